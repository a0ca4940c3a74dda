import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODERN_PATH, DEFAULT_PFOS_PATH } from '../facts/synfp/pfos.js';

const BIN = fileURLToPath(new URL('../../tools/synos', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'synos-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function synos(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('synos answers from the shipped pf.os.modern, then pf.os (samples of shared/p0f/README.md)', () => {
  // pf.os alone (--db): as Mail Avenger's synos, which knows nothing after 2010
  assert.deepEqual(synos('--db', DEFAULT_PFOS_PATH, '65535:64:1:60:M1460,N,W0,N,N,T'), {
    code: 0,
    out: 'FreeBSD 4.8-5.2 (or MacOS X)\n',
    err: '',
  });
  assert.deepEqual(synos('--db', DEFAULT_PFOS_PATH, '65495:64:1:60:M65495,S,T,N,W10'), {
    code: 1,
    out: 'unknown\n',
    err: '',
  });
  assert.deepEqual(synos('--db', DEFAULT_PFOS_PATH, '64240:113:1:52:M1460,N,W8,N,N,S'), {
    code: 0,
    out: 'Windows XP/2000 (RFC1323 no tstamp) (generic)\n',
    err: '',
  });
  // the default: today's systems are named, pf.os still answers for the old ones
  assert.deepEqual(synos('65495:64:1:60:M65495,S,T,N,W10'), { code: 0, out: 'Linux 4.19+ (loopback)\n', err: '' });
  assert.deepEqual(synos('64240:113:1:52:M1460,N,W8,N,N,S'), {
    code: 0,
    out: 'Windows 10/11 (or Server 2016+)\n',
    err: '',
  });
  assert.deepEqual(synos('65535:64:1:60:M1460,N,W0,N,N,T').out, 'FreeBSD 4.8-5.2 (or MacOS X)\n');
  const v = synos('-v', '65535:52:1:60:M1460,N,W0,N,N,T');
  assert.equal(v.code, 0);
  assert.equal(
    v.out,
    `FreeBSD 4.8-5.2 (or MacOS X)\ndistance: 12\nsignature: ${DEFAULT_PFOS_PATH}:275: 65535:64:1:60:M*,N,W0,N,N,T:\tFreeBSD:4.8-4.11::FreeBSD 4.8-5.2 (or MacOS X)\n`,
  );
  const m = synos('-v', '65535:60:1:60:M1460,N,W6,S,T');
  assert.equal(m.code, 0);
  assert.match(
    m.out,
    new RegExp(`^FreeBSD 9-14\ndistance: 4\nsignature: ${DEFAULT_MODERN_PATH}:\\d+: 65535:64:1:60:M\\*,N,W6,S,T:`),
  );
});

test('synos --db repeated: the files as one, in the order given; a specific line of any before the generic ones', () => {
  const a = join(dir, 'a.os'),
    b = join(dir, 'b.os');
  writeFileSync(a, '*:64:1:60:M*,S,T,N,W*:@Linux:a::generic in A\nS44:64:1:60:M*,S,T,N,W7:Linux:a::specific in A\n');
  writeFileSync(b, 'S44:64:1:60:M*,S,T,N,W*:Linux:b::specific in B\n*:64:1:60:M*,S,T,N,W*:@Linux:b::generic in B\n');
  assert.equal(synos('--db', a, '--db', b, '64240:64:1:60:M1460,S,T,N,W7').out, 'specific in A\n');
  assert.equal(synos('--db', b, '--db', a, '64240:64:1:60:M1460,S,T,N,W7').out, 'specific in B\n');
  // W9: A's specific line does not match, B's does, and wins over A's generic line
  assert.equal(synos('--db', a, '--db', b, '64240:64:1:60:M1460,S,T,N,W9').out, 'specific in B\n');
  // no specific line: the first generic one
  assert.equal(synos(`--db=${a}`, `--db=${b}`, '14600:64:1:60:M1460,S,T,N,W9').out, 'generic in A (generic)\n');
  const v = synos('-v', '--db', a, '--db', b, '64240:64:1:60:M1460,S,T,N,W9');
  assert.match(v.out, new RegExp(`signature: ${b}:1: S44:`));
  // an unreadable file among them: exit 2, nothing printed
  const r = synos('--db', a, '--db', join(dir, 'missing.os'), '64240:64:1:60:M1460,S,T,N,W7');
  assert.deepEqual([r.code, r.out], [2, '']);
  assert.match(r.err, /^synos: .*missing\.os/);
});

test('synos --db and --mtu', () => {
  const db = join(dir, 'fixture.os');
  writeFileSync(db, '# fixture\nT4:64:1:44:M*:Box:1::a T4 box\nthis is not a line\n');
  assert.deepEqual(synos('--db', db, '6000:60:1:44:M1412'), {
    code: 0,
    out: 'a T4 box\n',
    err: `${db}:3: expected 9 colon-separated fields, found 1\n`,
  });
  assert.equal(synos(`--db=${db}`, '--mtu', '0', '6000:60:1:44:M1412').code, 1);
  assert.equal(synos(`--db=${db}`, '--mtu=1400', '5600:60:1:44:M1412').out, 'a T4 box\n');
});

test('synos: usage errors exit 2, --help exits 0', () => {
  const help = synos('--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: synos \[--db FILE\]\.\.\. \[--mtu N\]/);
  for (const args of [
    [],
    ['a', 'b'],
    ['--mtu', 'x', '1:64:0:40:.'],
    ['--db'],
    ['--bogus', '1:64:0:40:.'],
    ['S4:64:1:60:M*,S,T,N,W0'],
    ['--db', join(dir, 'missing.os'), '1:64:0:40:.'],
  ]) {
    const r = synos(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.out, '');
    assert.match(r.err, /^synos: /);
  }
});

test('synos: a reader that goes away (`synos … | head -1`) ends it quietly', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [BIN, '-v', '64240:56:1:60:M1460,S,T,N,W7'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy(); // closed before synos writes: its write gets EPIPE
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.deepEqual({ code, err }, { code: 0, err: '' });
});
