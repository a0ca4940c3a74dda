import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PFOS_PATH } from '../facts/synfp/pfos.js';

const BIN = fileURLToPath(new URL('../../tools/synos', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'synos-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function synos(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('synos answers from the shipped pf.os (samples of shared/p0f/README.md)', () => {
  assert.deepEqual(synos('65535:64:1:60:M1460,N,W0,N,N,T'), {
    code: 0,
    out: 'FreeBSD 4.8-5.2 (or MacOS X)\n',
    err: '',
  });
  assert.deepEqual(synos('65495:64:1:60:M65495,S,T,N,W10'), { code: 1, out: 'unknown\n', err: '' });
  assert.deepEqual(synos('64240:113:1:52:M1460,N,W8,N,N,S'), {
    code: 0,
    out: 'Windows XP/2000 (RFC1323 no tstamp) (generic)\n',
    err: '',
  });
  const v = synos('-v', '65535:52:1:60:M1460,N,W0,N,N,T');
  assert.equal(v.code, 0);
  assert.equal(
    v.out,
    `FreeBSD 4.8-5.2 (or MacOS X)\ndistance: 12\nsignature: ${DEFAULT_PFOS_PATH}:275: 65535:64:1:60:M*,N,W0,N,N,T:\tFreeBSD:4.8-4.11::FreeBSD 4.8-5.2 (or MacOS X)\n`,
  );
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
  assert.match(help.out, /^usage: synos \[--db FILE\] \[--mtu N\]/);
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
