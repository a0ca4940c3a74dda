import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STOCK_ETC_DIR, runInstallEtc } from './install-etc.js';
import { parseArgs } from './args.js';

const base = mkdtempSync(join(tmpdir(), 'install-etc-'));
after(() => rmSync(base, { recursive: true, force: true }));

function run(dir: string): { code: number; out: string; err: string } {
  let out = '',
    err = '';
  const code = runInstallEtc(dir, { write: (t: string) => (out += t) }, { write: (t: string) => (err += t) });
  return { code, out, err };
}

const asRoot = process.getuid?.() === 0;

test('the stock scripts are unknown, relay and default: POSIX sh, executable', () => {
  assert.deepEqual(readdirSync(STOCK_ETC_DIR).sort(), ['default', 'relay', 'unknown']);
  for (const name of readdirSync(STOCK_ETC_DIR)) {
    const path = join(STOCK_ETC_DIR, name);
    assert.ok(readFileSync(path, 'utf8').startsWith('#!/bin/sh\n'), name);
    assert.equal(statSync(path).mode & 0o777, 0o755, name);
    assert.equal(spawnSync('dash', ['-n', path]).status, 0, `${name}: dash -n`);
  }
});

test('--install-etc creates DIR, installs each script 0755 (root-owned as root), then never overwrites', () => {
  const dir = join(base, 'a', 'etc', 'avenger');
  const first = run(dir);
  assert.equal(first.code, 0, first.err);
  assert.equal(first.out, ['default', 'relay', 'unknown'].map((n) => `installed ${join(dir, n)}\n`).join(''));
  assert.equal(statSync(dir).mode & 0o777, 0o755);
  for (const name of ['default', 'relay', 'unknown']) {
    const st = statSync(join(dir, name));
    assert.equal(st.mode & 0o7777, 0o755, name);
    if (asRoot) assert.deepEqual([st.uid, st.gid], [0, 0], name);
    assert.deepEqual(readFileSync(join(dir, name)), readFileSync(join(STOCK_ETC_DIR, name)));
  }
  assert.deepEqual(readdirSync(dir).sort(), ['default', 'relay', 'unknown'], 'no temporary file left');
  if (!asRoot) assert.match(first.err, /not run as root/);
  else assert.equal(first.err, '');

  // the administrator's own unknown, and a second run: nothing is replaced
  writeFileSync(join(dir, 'unknown'), '#!/bin/sh\nreject "mine"\n');
  const second = run(dir);
  assert.equal(second.code, 0);
  assert.equal(
    second.out,
    ['default', 'relay', 'unknown'].map((n) => `kept ${join(dir, n)} (exists; not overwritten)\n`).join(''),
  );
  assert.equal(readFileSync(join(dir, 'unknown'), 'utf8'), '#!/bin/sh\nreject "mine"\n');
});

test('--install-etc: only the missing scripts are added; a writable DIR is reported; a DIR that is a file fails', () => {
  const dir = join(base, 'b');
  mkdirSync(dir);
  chmodSync(dir, 0o775);
  writeFileSync(join(dir, 'relay'), 'mine\n');
  const r = run(dir);
  assert.equal(r.code, 0);
  assert.equal(
    r.out,
    `installed ${join(dir, 'default')}\nkept ${join(dir, 'relay')} (exists; not overwritten)\ninstalled ${join(dir, 'unknown')}\n`,
  );
  assert.match(r.err, /can be written by others: the runner will refuse its scripts/);
  assert.equal(readFileSync(join(dir, 'relay'), 'utf8'), 'mine\n');
  const file = join(base, 'c');
  writeFileSync(file, '');
  const bad = run(file);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^asmtpd: --install-etc: /);
  assert.equal(bad.out, '');
});

test('asmtpd --install-etc DIR on the command line', () => {
  assert.deepEqual(parseArgs(['--install-etc', '/etc/avenger']), { mode: 'install-etc', dir: '/etc/avenger' });
  for (const argv of [
    ['--install-etc'],
    ['--install-etc', 'a', 'b'],
    ['--install-etc', '-f', 'x.conf', 'd'],
    ['--check', '--install-etc', 'd'],
  ])
    assert.equal(parseArgs(argv).mode, 'usage-error', argv.join(' '));
});
