import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDecision, SHELL_PRELUDE } from './prelude.js';

const rec = (...fields: string[]) => Buffer.from(`${fields.length}\0${fields.join('\0')}\0`);

test('parseDecision reads each verb', () => {
  assert.deepEqual(parseDecision(rec('accept')), { decision: { verb: 'accept', args: [] }, error: null });
  assert.deepEqual(parseDecision(rec('reject', '550 5.7.1 no')).decision, { verb: 'reject', args: ['550 5.7.1 no'] });
  assert.deepEqual(parseDecision(rec('defer', '')).decision, { verb: 'defer', args: [''] });
  assert.deepEqual(parseDecision(rec('redirect', 'bob+grey@x')).decision, { verb: 'redirect', args: ['bob+grey@x'] });
  assert.deepEqual(parseDecision(rec('bodytest', 'spamc', '-c', 'a b')).decision, {
    verb: 'bodytest',
    args: ['spamc', '-c', 'a b'],
  });
});

test('parseDecision: first record wins, empty is no decision', () => {
  assert.deepEqual(parseDecision(Buffer.concat([rec('reject', 'x'), rec('accept')])).decision, {
    verb: 'reject',
    args: ['x'],
  });
  assert.deepEqual(parseDecision(Buffer.alloc(0)), { decision: null, error: null });
});

test('parseDecision reports garbage instead of guessing', () => {
  const bad = [
    Buffer.from('accept\n'),
    Buffer.from('2\0accept'),
    rec('shrug'),
    rec('redirect'),
    rec('redirect', 'a', 'b'),
    rec('accept', 'a', 'b'),
    rec('bodytest', ''),
    Buffer.from('0\0'),
    Buffer.from('x\0accept\0'),
  ];
  for (const bytes of bad) {
    const r = parseDecision(bytes);
    assert.equal(r.decision, null, JSON.stringify(bytes.toString()));
    assert.notEqual(r.error, null);
  }
});

test('the prelude is constant text that sources /dev/fd/4 last', () => {
  assert.match(SHELL_PRELUDE, /\n\. \/dev\/fd\/4\n$/);
  for (const fn of ['accept', 'reject', 'defer', 'redirect', 'bodytest', 'errcheck', 'spf', 'dns', 'rbl'])
    assert.match(SHELL_PRELUDE, new RegExp(`^${fn}\\(\\)`, 'm'));
});

/** Runs a script through the prelude as the runner does (script on fd 4, decisions on fd 3). */
function runThroughPrelude(script: string, env: Record<string, string>): { stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'prelude-test-'));
  try {
    const path = join(dir, 'rcpt');
    writeFileSync(path, script);
    const fd = openSync(path, 'r');
    try {
      const r = spawnSync('/bin/sh', ['-c', SHELL_PRELUDE, path], {
        env: { PATH: '/usr/bin:/bin', ...env },
        stdio: ['ignore', 'pipe', 'pipe', 'pipe', fd],
        encoding: 'utf8',
      });
      return { stdout: r.stdout, stderr: r.stderr };
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('spf, dns and rbl run "$ASMTPD_NODE" "$ASMTPD_HELPER" NAME with the arguments as data, and return its exit code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prelude-helper-'));
  try {
    const helper = join(dir, 'helper.sh');
    writeFileSync(helper, `printf '[%s]' "$@"; exit 3\n`);
    const script = `spf "a b" '$(id)' '\`id\`'; echo " rc=$?"; dns -t MX 'x;y'; echo " rc=$?"; rbl; echo " rc=$?"\n`;
    const r = runThroughPrelude(script, { ASMTPD_NODE: '/bin/sh', ASMTPD_HELPER: helper });
    assert.equal(r.stdout, '[spf][a b][$(id)][`id`] rc=3\n[dns][-t][MX][x;y] rc=3\n[rbl] rc=3\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without ASMTPD_HELPER the helpers say so and return 2', () => {
  const r = runThroughPrelude('dns -t A example.org; echo "rc=$?"\n', {});
  assert.equal(r.stdout, 'rc=2\n');
  assert.match(r.stderr, /dns: not available/);
});
