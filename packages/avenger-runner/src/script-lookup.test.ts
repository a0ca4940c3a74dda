import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { closeQuietly, findScript } from './script-lookup.js';
import { isRoot } from './test-support.js';

const uid = process.getuid?.() ?? 0;
let base = '';
let dir = '';

before(() => {
  base = mkdtempSync('/tmp/asmtpd-runner-lookup-');
  dir = join(base, '.avenger');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  for (const name of ['rcpt', 'rcpt+a+default', 'rcpt+default']) writeFileSync(join(dir, name), 'accept\n', { mode: 0o644 });
});
after(() => rmSync(base, { recursive: true, force: true }));

function lookup(candidates: string[], d = dir) {
  const r = findScript(d, candidates, uid);
  if (r.kind === 'found') closeQuietly(r.fd);
  return r;
}

test('first existing candidate wins, in order, and tried lists what was looked at', () => {
  const r = lookup(['rcpt+a+b', 'rcpt+a+default', 'rcpt+default']);
  assert.equal(r.kind, 'found');
  if (r.kind !== 'found') return;
  assert.equal(r.script, `${dir}/rcpt+a+default`);
  assert.deepEqual(r.tried, [`${dir}/rcpt+a+b`, `${dir}/rcpt+a+default`]);
});

test('no candidate, or no directory → none', () => {
  assert.deepEqual(lookup(['rcpt+zz']), { kind: 'none', tried: [`${dir}/rcpt+zz`] });
  assert.deepEqual(lookup(['rcpt'], join(base, 'missing')), { kind: 'none', tried: [`${base}/missing/rcpt`] });
});

test("names with '/' or a leading '.' are never looked up", () => {
  writeFileSync(join(base, 'outside'), 'accept\n', { mode: 0o644 });
  const r = lookup(['../outside', '.hidden', 'sub/x', 'rcpt+zz']);
  assert.deepEqual(r, { kind: 'none', tried: [`${dir}/rcpt+zz`] });
});

test('group- or world-writable script is refused with the reason', () => {
  writeFileSync(join(dir, 'rcpt+gw'), 'accept\n');
  chmodSync(join(dir, 'rcpt+gw'), 0o664);
  writeFileSync(join(dir, 'rcpt+ww'), 'accept\n');
  chmodSync(join(dir, 'rcpt+ww'), 0o646);
  const g = lookup(['rcpt+gw', 'rcpt']);
  assert.equal(g.kind, 'refused');
  if (g.kind === 'refused') assert.equal(g.reason, `${dir}/rcpt+gw is group-writable`);
  const w = lookup(['rcpt+ww']);
  assert.equal(w.kind === 'refused' && w.reason, `${dir}/rcpt+ww is world-writable`);
});

test('not a regular file is refused (directory, FIFO) without blocking', () => {
  mkdirSync(join(dir, 'rcpt+dir'));
  execFileSync('mkfifo', ['-m', '0644', join(dir, 'rcpt+fifo')]);
  const d = lookup(['rcpt+dir']);
  assert.equal(d.kind === 'refused' && d.reason, `${dir}/rcpt+dir is not a regular file`);
  const f = lookup(['rcpt+fifo']);
  assert.equal(f.kind === 'refused' && f.reason, `${dir}/rcpt+fifo is not a regular file`);
});

test('a symlink to a safe file is followed; the target is what gets checked', () => {
  symlinkSync('rcpt', join(dir, 'rcpt+link'));
  assert.equal(lookup(['rcpt+link']).kind, 'found');
  writeFileSync(join(base, 'gw-target'), 'accept\n');
  chmodSync(join(base, 'gw-target'), 0o646);
  symlinkSync(join(base, 'gw-target'), join(dir, 'rcpt+badlink'));
  const r = lookup(['rcpt+badlink']);
  assert.equal(r.kind === 'refused' && r.reason, `${dir}/rcpt+badlink is world-writable`);
  // a safe file in a world-writable directory (someone else could replace it there)
  const open = join(base, 'open-dir');
  mkdirSync(open);
  chmodSync(open, 0o757);
  writeFileSync(join(open, 'target'), 'accept\n', { mode: 0o644 });
  symlinkSync(join(open, 'target'), join(dir, 'rcpt+opendir'));
  const o = lookup(['rcpt+opendir']);
  assert.equal(o.kind === 'refused' && o.reason, `${open} is world-writable`);
});

test('a group-writable directory is refused when a script exists in it', () => {
  const d2 = join(base, 'gwdir');
  mkdirSync(d2);
  writeFileSync(join(d2, 'rcpt'), 'accept\n', { mode: 0o644 });
  chmodSync(d2, 0o775);
  const r = lookup(['rcpt'], d2);
  assert.equal(r.kind === 'refused' && r.reason, `${d2} is group-writable`);
  assert.equal(lookup(['rcpt+none'], d2).kind, 'none');
});

test('a script owned by another (non-root) uid is refused', { skip: !isRoot && 'needs root to chown' }, () => {
  writeFileSync(join(dir, 'rcpt+other'), 'accept\n', { mode: 0o644 });
  chownSync(join(dir, 'rcpt+other'), 4242, 4242);
  const r = findScript(dir, ['rcpt+other'], 4343);
  assert.equal(r.kind === 'refused' && r.reason, `${dir}/rcpt+other is owned by uid 4242, not 4343 or root`);
  // Root-owned scripts are fine for anyone.
  const ok = findScript(dir, ['rcpt'], 4343);
  assert.equal(ok.kind, isRoot ? 'found' : 'refused');
  if (ok.kind === 'found') closeQuietly(ok.fd);
});
