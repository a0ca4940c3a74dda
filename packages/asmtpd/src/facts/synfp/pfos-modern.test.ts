/**
 * share/pf.os.modern: it parses, every signature says where its parameters come from, and the
 * published SYNs of today's systems get their names from the shipped pair (pf.os.modern, then
 * pf.os) where pf.os alone had none or a 2000s one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseFingerprint } from './fingerprint.js';
import {
  DEFAULT_MODERN_PATH,
  DEFAULT_PFOS_PATH,
  DEFAULT_SYNFP_DBS,
  describeMatch,
  matchFingerprint,
  readPfosFile,
  readPfosFiles,
  type PfosDb,
} from './pfos.js';

const guess = (db: PfosDb, fp: string): string => {
  const parsed = parseFingerprint(fp);
  assert.ok(parsed, fp);
  return describeMatch(matchFingerprint(db, parsed));
};

test('pf.os.modern parses without a bad line; the default is pf.os.modern, then pf.os', () => {
  const modern = readPfosFile(DEFAULT_MODERN_PATH);
  assert.deepEqual(modern.errors, []);
  assert.ok(modern.signatures.length >= 30, String(modern.signatures.length));
  assert.deepEqual(DEFAULT_SYNFP_DBS, [DEFAULT_MODERN_PATH, DEFAULT_PFOS_PATH]);
  const both = readPfosFiles(DEFAULT_SYNFP_DBS);
  assert.equal(both.signatures.length, modern.signatures.length + readPfosFile(DEFAULT_PFOS_PATH).signatures.length);
  assert.equal(both.signatures[0]!.file, DEFAULT_MODERN_PATH);
  assert.equal(both.signatures.at(-1)!.file, DEFAULT_PFOS_PATH);
});

test('pf.os.modern: every signature is in a paragraph whose comment names the source of its parameters', () => {
  const lines = readFileSync(DEFAULT_MODERN_PATH, 'utf8').split('\n');
  const SOURCE = /\[(kernel|p0f3|capture|asmtpd)\b/;
  let paragraph: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') {
      paragraph = [];
      return;
    }
    paragraph.push(line);
    if (line.startsWith('#')) return;
    assert.ok(
      paragraph.some((l) => l.startsWith('#') && SOURCE.test(l)),
      `line ${i + 1} (${line}) has no [source] in the comment of its paragraph`,
    );
  });
});

/** Published parameters of each system, as CLIENT_SYNFP writes them, and the OS name expected. */
const PUBLISHED: [string, string, string][] = [
  // [fingerprint, with pf.os.modern + pf.os, with pf.os alone]
  ['64240:64:1:60:M1460,S,T,N,W7', 'Linux 4.19+', 'unknown'],
  ['64800:63:1:80:M1440,S,T,N,W7', 'Linux 4.19+', 'unknown'], // IPv6 over Ethernet, one router away
  ['65340:57:1:60:M1452,S,T,N,W9', 'Linux 4.19+', 'unknown'], // PPPoE, a tuned scale
  ['64240:64:1:60:M1380,S,T,N,W7', 'Linux 4.19+', 'unknown'], // MSS lowered by a router (64240 = 44 × 1460)
  ['65495:64:1:60:M65495,S,T,N,W7', 'Linux 4.19+ (loopback)', 'unknown'],
  ['65476:64:1:80:M65476,S,T,N,W10', 'Linux 4.19+ (loopback)', 'unknown'],
  ['64240:64:1:52:M1460,N,N,S,N,W7', 'Linux 4.19+ (no timestamps)', 'unknown'],
  ['29200:64:1:60:M1460,S,T,N,W7', 'Linux 3.11-4.18', 'unknown'],
  ['65535:64:1:60:M1460,S,T,N,W8', 'Android or Linux (large receive buffer)', 'unknown'],
  ['64240:64:1:60:M1460,S,T,N,W1', 'Android', 'unknown'],
  [
    '64240:128:1:52:M1460,N,W8,N,N,S',
    'Windows 10/11 (or Server 2016+)',
    'Windows XP/2000 (RFC1323 no tstamp) (generic)',
  ],
  [
    '64202:117:1:52:M1366,N,W8,N,N,S',
    'Windows 10/11 (or Server 2016+)',
    'Windows XP/2000 (RFC1323 no tstamp) (generic)',
  ],
  [
    '65535:128:1:52:M1460,N,W8,N,N,S',
    'Windows 10/11 (or Server 2016+)',
    'Windows XP/2000 (RFC1323 no tstamp) (generic)',
  ],
  ['64240:128:1:60:M1460,N,W8,S,T', 'Windows 10/11 (timestamps on)', 'unknown'],
  ['8192:128:1:52:M1460,N,W8,N,N,S', 'Windows 7/8', 'Windows XP/2000 (RFC1323 no tstamp) (generic)'],
  ['17520:128:1:52:M1460,N,W8,N,N,S', 'Windows 7-11 (generic)', 'Windows XP/2000 (RFC1323 no tstamp) (generic)'],
  ['65535:64:1:64:M1460,N,W6,N,N,T,S,E', 'macOS or iOS', 'unknown'],
  ['65535:56:1:84:M1440,N,W5,N,N,T,S,E', 'macOS or iOS', 'unknown'], // IPv6, 8 routers away
  ['65535:64:1:64:M1460,N,W2,N,N,T,S,E', 'iOS', 'unknown'],
  ['65535:64:1:60:M1460,N,W6,S,T', 'FreeBSD 9-14', 'unknown'],
  ['65535:64:1:60:M1460,N,W3,S,T', 'FreeBSD 7-8', 'unknown'],
  ['65535:64:1:60:M1460,N,W9,S,T', 'FreeBSD (generic)', 'unknown'],
  // pf.os still answers for what it knows, and nothing here hides it
  ['5840:64:1:60:M1460,S,T,N,W7', 'Linux 2.6.8 and newer (?)', 'Linux 2.6.8 and newer (?)'],
  ['65535:64:1:60:M1460,N,W0,N,N,T', 'FreeBSD 4.8-5.2 (or MacOS X)', 'FreeBSD 4.8-5.2 (or MacOS X)'],
  ['16384:64:1:44:M1460', 'FreeBSD 2.0-4.2', 'FreeBSD 2.0-4.2'],
];

test('the published SYNs of current systems are named; pf.os alone did not (or named a 2000s system)', () => {
  const both = readPfosFiles(DEFAULT_SYNFP_DBS);
  const old = readPfosFile(DEFAULT_PFOS_PATH);
  for (const [fp, now, before] of PUBLISHED) {
    assert.deepEqual([fp, guess(both, fp), guess(old, fp)], [fp, now, before]);
  }
});

test('distance: the line initial TTL less the observed one', () => {
  const both = readPfosFiles(DEFAULT_SYNFP_DBS);
  const at = (fp: string): number | null | undefined => matchFingerprint(both, parseFingerprint(fp)!)?.distance;
  assert.equal(at('64240:113:1:52:M1460,N,W8,N,N,S'), 15);
  assert.equal(at('65535:61:1:64:M1460,N,W6,N,N,T,S,E'), 3);
  assert.equal(at('64240:64:1:60:M1460,S,T,N,W7'), 0);
  // beyond 40 hops the line does not apply (pf.os's rule): a Windows-like SYN with TTL 64 is not Windows
  assert.equal(guess(both, '64240:64:1:52:M1460,N,W8,N,N,S'), 'unknown');
});

test('order: a specific line of pf.os.modern or pf.os wins over a generic one, whichever file comes first', () => {
  const reversed = readPfosFiles([DEFAULT_PFOS_PATH, DEFAULT_MODERN_PATH]);
  // pf.os's "Windows XP/2000" line for this SYN is generic: pf.os.modern's specific one wins in both orders
  assert.equal(guess(reversed, '64240:128:1:52:M1460,N,W8,N,N,S'), 'Windows 10/11 (or Server 2016+)');
});
