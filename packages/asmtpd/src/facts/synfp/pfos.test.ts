import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseFingerprint } from './fingerprint.js';
import {
  DEFAULT_PFOS_PATH,
  concatPfos,
  describeMatch,
  matchAll,
  matchFingerprint,
  parsePfos,
  readPfosFile,
  type MatchOptions,
} from './pfos.js';

const fp = (s: string) => {
  const f = parseFingerprint(s);
  assert.ok(f, s);
  return f;
};
/** The description of the line of `lines` that matches `s`, or "unknown". */
const guess = (lines: string[], s: string, opts?: MatchOptions) => {
  const db = parsePfos(lines.join('\n'));
  assert.deepEqual(db.errors, []);
  return describeMatch(matchFingerprint(db, fp(s), opts));
};

const shipped = readPfosFile();

test('the shipped pf.os: 239 signatures, no bad line, header and notice kept', () => {
  assert.equal(shipped.signatures.length, 239);
  assert.deepEqual(shipped.errors, []);
  const text = readFileSync(DEFAULT_PFOS_PATH, 'utf8');
  assert.match(text, /^# \$OpenBSD: pf\.os,v 1\.25/);
  assert.match(text, /Permission to use, copy, modify, and distribute this software/);
  const upstream = new URL('../../../../../../shared/p0f/pf.os', import.meta.url); // the unchanged copy, when present
  if (existsSync(upstream)) assert.equal(text, readFileSync(upstream, 'utf8'));
});

test('sample fingerprints of shared/p0f/README.md, answered from pf.os', () => {
  const bsd = matchFingerprint(shipped, fp('65535:64:1:60:M1460,N,W0,N,N,T'));
  assert.ok(bsd);
  assert.deepEqual(
    [bsd.os, bsd.version, bsd.subtype, bsd.details, bsd.generic, bsd.distance, bsd.signature.line],
    ['FreeBSD', '4.8-4.11', '', 'FreeBSD 4.8-5.2 (or MacOS X)', false, 0, 275],
  );
  // the same client 12 hops away
  assert.equal(matchFingerprint(shipped, fp('65535:52:1:60:M1460,N,W0,N,N,T'))?.distance, 12);
  // a current Linux over loopback (window = 1 x MSS, wscale 10): pf.os (2010) has no such line
  assert.equal(matchFingerprint(shipped, fp('65495:64:1:60:M65495,S,T,N,W10')), null);
  assert.equal(describeMatch(null), 'unknown');
});

test('shipped pf.os: Linux, Windows (generic), scanners, IPv6', () => {
  assert.equal(
    describeMatch(matchFingerprint(shipped, fp('5840:57:1:60:M1460,S,T,N,W7'))),
    'Linux 2.6.8 and newer (?)',
  );
  const win = matchFingerprint(shipped, fp('64240:113:1:52:M1460,N,W8,N,N,S'));
  assert.deepEqual(
    [describeMatch(win), win?.os, win?.version, win?.generic, win?.distance],
    ['Windows XP/2000 (RFC1323 no tstamp) (generic)', 'Windows', 'XP', true, 15],
  );
  const nmap = matchFingerprint(shipped, fp('2048:49:0:40:.'));
  assert.deepEqual([nmap?.os, nmap?.details, nmap?.distance], ['NMAP', 'NMAP syn scan (2)', null]);
  // an IPv6 SYN is 20 bytes longer than the IPv4 sizes of pf.os
  assert.equal(
    describeMatch(matchFingerprint(shipped, fp('5840:57:1:80:M1440,S,T,N,W7'))),
    'Linux 2.6.8 and newer (?)',
  );
  // identical lines for several OSes: the first one in the file
  assert.deepEqual(
    matchAll(shipped, fp('16384:64:1:44:M1460')).map((m) => m.version),
    ['2.0-2.2', '3.0-3.5', '4.0-4.2'],
  );
});

test('window forms: N, *, %N, SN, TN (MSS-derived or from the MTU)', () => {
  const exact = ['16384:64:1:44:M*:A:1::exact'];
  assert.equal(guess(exact, '16384:64:1:44:M1460'), 'exact');
  assert.equal(guess(exact, '16383:64:1:44:M1460'), 'unknown');
  assert.equal(guess(['*:64:1:44:M*:A:1::any'], '3:64:1:44:M1460'), 'any');
  const mod = ['%8192:64:1:44:M*:A:1::mod'];
  assert.equal(guess(mod, '24576:64:1:44:M1460'), 'mod');
  assert.equal(guess(mod, '24577:64:1:44:M1460'), 'unknown');
  const s4 = ['S4:64:1:44:M*:A:1::s4'];
  assert.equal(guess(s4, '5600:64:1:44:M1400'), 's4'); // 4 x MSS
  assert.equal(guess(s4, '5840:64:1:44:M1400'), 's4'); // 4 x (MTU 1500 - 40): the MSS was rewritten on the way
  assert.equal(guess(s4, '5840:64:1:44:M1400', { mtu: 0 }), 'unknown');
  assert.equal(guess(s4, '5601:64:1:44:M1400'), 'unknown');
  assert.equal(guess(['S4:64:1:40:.:A:1::s4'], '5840:64:1:40:.'), 'unknown'); // no MSS: no SN
  const t4 = ['T4:64:1:44:M*:A:1::t4'];
  assert.equal(guess(t4, '5808:64:1:44:M1412'), 't4'); // 4 x (MSS + 40)
  assert.equal(guess(t4, '6000:64:1:44:M1412'), 't4'); // 4 x MTU 1500
  assert.equal(guess(t4, '6000:64:1:44:M1412', { mtu: 0 }), 'unknown');
  assert.equal(guess(t4, '5600:64:1:44:M1412', { mtu: 1400 }), 't4');
  assert.equal(guess(t4, '6000:64:1:44:M1412', { mtu: 1400 }), 'unknown');
});

test('TTL: at most 40 hops below the initial TTL, never above it', () => {
  const lines = ['1024:64:0:44:M*:A:1::ttl64'];
  assert.equal(guess(lines, '1024:64:0:44:M1'), 'ttl64');
  assert.equal(guess(lines, '1024:24:0:44:M1'), 'ttl64');
  assert.equal(guess(lines, '1024:23:0:44:M1'), 'unknown');
  assert.equal(guess(lines, '1024:65:0:44:M1'), 'unknown');
  assert.equal(matchFingerprint(parsePfos(lines[0]!), fp('1024:24:0:44:M1'))?.distance, 40);
});

test('DF and size: exact, *, %N; the IPv6 allowance', () => {
  assert.equal(guess(['1:64:0:44:M*:A:1::df0'], '1:64:1:44:M1'), 'unknown');
  assert.equal(guess(['1:64:1:*:M*:A:1::any size'], '1:64:1:1234:M1'), 'any size');
  assert.equal(guess(['1:64:1:%4:M*:A:1::size mod'], '1:64:1:48:M1'), 'size mod');
  assert.equal(guess(['1:64:1:%4:M*:A:1::size mod'], '1:64:1:46:M1'), 'unknown');
  assert.equal(guess(['1:64:0:44:M*:A:1::v6 twin'], '1:64:1:64:M1'), 'v6 twin'); // IPv6: DF set, 20 bytes more
  assert.equal(guess(['1:64:0:44:M*:A:1::v6 twin'], '1:64:0:64:M1'), 'unknown');
});

test('options: order, exact values, M*/W*, M%N/W%N, T vs T0, E, ?N', () => {
  const lines = [
    '1:64:1:60:M%4,N,W%2,N,N,T:A:1::mod opts',
    '1:64:1:60:M1460,N,W*,N,N,T0:A:2::t0',
    '1:64:1:60:M*,W0,E:A:3::eol',
    '1:64:1:60:M*,?12:A:4::opt12',
  ];
  assert.equal(guess(lines, '1:64:1:60:M1460,N,W2,N,N,T'), 'mod opts');
  assert.equal(guess(lines, '1:64:1:60:M1461,N,W2,N,N,T'), 'unknown');
  assert.equal(guess(lines, '1:64:1:60:M1460,N,W3,N,N,T'), 'unknown');
  assert.equal(guess(lines, '1:64:1:60:M1460,N,W3,N,N,T0'), 't0');
  assert.equal(guess(lines, '1:64:1:60:M1400,N,W3,N,N,T0'), 'unknown');
  assert.equal(guess(lines, '1:64:1:60:N,M1460,W2,N,N,T'), 'unknown'); // order matters
  assert.equal(guess(lines, '1:64:1:60:M1460,N,W2,N,T'), 'unknown'); // count matters
  assert.equal(guess(lines, '1:64:1:60:M1,W0,E'), 'eol');
  assert.equal(guess(lines, '1:64:1:60:M1,W0'), 'unknown'); // the line lists E: required
  assert.equal(guess(lines, '1:64:1:60:M1,?12'), 'opt12');
  assert.equal(guess(lines, '1:64:1:60:M1,?13'), 'unknown');
  // a line without E ignores the packet's end-of-options (pf does)
  assert.equal(guess(['1:64:1:48:M*,W0:A:1::no eol'], '1:64:1:48:M1460,W0,E'), 'no eol');
  assert.equal(guess(['1:64:0:40:.:A:1::none'], '1:64:0:40:.'), 'none');
  assert.equal(guess(['1:64:0:40:.:A:1::none'], '1:64:0:40:N'), 'unknown');
});

test('generic @ lines only when no specific line matches; * lines give no distance', () => {
  const lines = [
    '*:128:1:48:M*,N,N,S:@Win:any::generic',
    '8192:128:1:48:M*,N,N,S:Win:98::specific',
    '1024:64:0:40:.:*Scan:::scanner',
  ];
  const specific = matchFingerprint(parsePfos(lines.join('\n')), fp('8192:120:1:48:M536,N,N,S'));
  assert.deepEqual([specific?.details, specific?.generic, specific?.distance], ['specific', false, 8]);
  assert.equal(guess(lines, '8193:120:1:48:M536,N,N,S'), 'generic (generic)');
  assert.deepEqual(
    matchAll(parsePfos(lines.join('\n')), fp('8192:120:1:48:M536,N,N,S')).map((m) => m.details),
    ['specific', 'generic'],
  );
  const scan = matchFingerprint(parsePfos(lines.join('\n')), fp('1024:50:0:40:.'));
  assert.deepEqual([scan?.os, scan?.distance], ['Scan', null]);
});

test('bad lines are reported with their numbers; the good ones still load', () => {
  const db = parsePfos(
    [
      '# comment',
      '',
      '   ',
      '1:64:0:40:.:Good:1::good # trailing comment',
      'bogus',
      'S:64:1:60:.:X:1::x',
      '*:64:2:60:.:X:1::x',
      '1:300:1:60:.:X:1::x',
      '1:64:1:60:Q:X:1::x',
      '%0:64:1:60:.:X:1::x',
      '1:64:1:60:M%0:X:1::x',
      '1:64:1:60:.:X:1:',
      '1:64:1:60:.::1::x',
      '1:64:1:60:.:X:1::x:extra',
      '1:64:1:*x:.:X:1::x',
      '1:64:1:60:M*,,N:X:1::x',
    ].join('\n'),
  );
  assert.deepEqual(
    db.signatures.map((s) => [s.line, s.text, s.details]),
    [[4, '1:64:0:40:.:Good:1::good', 'good']],
  );
  assert.deepEqual(
    db.errors.map((e) => e.line),
    [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
  );
  assert.match(db.errors[0]!.message, /9 colon-separated fields/);
  assert.match(db.errors[4]!.message, /option "Q"/);
});

test('parsePfos(text, file) names the file in each signature and error; concatPfos keeps the order', () => {
  const a = parsePfos('S4:64:1:60:M*:A:1::a line\nbad\n', '/db/a.os');
  const b = parsePfos('# b\n*:64:1:60:M*:@B:1::b line\n', '/db/b.os');
  assert.deepEqual(
    a.signatures.map((s) => [s.file, s.line]),
    [['/db/a.os', 1]],
  );
  assert.deepEqual(a.errors, [{ file: '/db/a.os', line: 2, message: 'expected 9 colon-separated fields, found 1' }]);
  const ab = concatPfos([a, b]);
  assert.deepEqual(
    ab.signatures.map((s) => [s.file, s.line, s.details]),
    [
      ['/db/a.os', 1, 'a line'],
      ['/db/b.os', 2, 'b line'],
    ],
  );
  assert.equal(ab.errors.length, 1);
  assert.equal(parsePfos('S4:64:1:60:M*:A:1::x\n').signatures[0]!.file, '');
});
