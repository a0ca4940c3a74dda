/**
 * match and escape, the installed commands (packages/asmtpd/tools/), run as a real non-root user:
 * match's options (-i -q -s -n -x -p -f) and exit codes (0 matched, 67 or -x CODE not, 2 bad usage
 * or an unreadable file), patterns from a file of the user's; escape's output for an ordinary and
 * a hostile address, which one more pass of the user's shell turns back into the address without
 * running anything. Needs root (a test account, setpriv).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';
import { shAs, tool } from '../support/tool-runs.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
const MARK = join(tmpdir(), `asmtpd-escape-pwned-${process.pid}`);
before(() => {
  if (unavailable) return;
  u = createUser('match');
  const patterns = join(u.home, 'dynamic.patterns');
  writeFileSync(patterns, '# dynamic-looking names\n*dsl*\n\n*[0-9]-[0-9]*-[0-9]*-[0-9]*\n');
  chownSync(patterns, u.uid, u.gid);
  const secret = join(u.home, 'secret.patterns');
  writeFileSync(secret, '*\n');
  chmodSync(secret, 0o600); // root's, unreadable for the user
});
after(() => {
  if (u) removeUser(u);
  rmSync(MARK, { force: true });
});

const match = (...args: string[]) => tool(u, 'match', args);

test('match: exit 0 and the matching strings; 67 when none; -q -i -s -n -x -p', { skip }, async () => {
  assert.deepEqual(await match('*@spam.example', 'a@spam.example', 'b@ok.example'), {
    status: 0,
    stdout: 'a@spam.example\n',
    stderr: '',
  });
  assert.deepEqual(await match('*@spam.example', 'b@ok.example'), { status: 67, stdout: '', stderr: '' });
  assert.deepEqual(await match('-q', '*@spam.example', 'a@spam.example'), { status: 0, stdout: '', stderr: '' });
  assert.equal((await match('-q', '*@SPAM.example', 'a@spam.EXAMPLE')).status, 67);
  assert.equal((await match('-qi', '*@SPAM.example', 'a@spam.EXAMPLE')).status, 0);
  assert.equal((await match('-q', 'a*', 'a/b')).status, 67);
  assert.equal((await match('-qs', 'a*', 'a/b')).status, 0);
  assert.equal((await match('-n', '1', '*@*', 'bob@x.example')).stdout, 'bob\n');
  assert.equal((await match('-x', '1', 'a', 'b')).status, 1);
  assert.equal((await match('-p', '-*', '--', '-rf')).stdout, '-rf\n');
  assert.equal((await match('-q', '$(*)', '$(reboot)')).status, 0, 'a string is only a string');
});

test(
  "match -f: the user's pattern file; a missing file matches nothing; an unreadable one is exit 2",
  { skip },
  async () => {
    const file = join(u.home, 'dynamic.patterns');
    assert.deepEqual(await match('-i', '-f', file, 'ADSL-1.isp.example', 'mail.example', 'h1-2-3-4.example'), {
      status: 0,
      stdout: 'ADSL-1.isp.example\nh1-2-3-4.example\n',
      stderr: '',
    });
    assert.equal((await match('-q', '-f', file, 'mail.example')).status, 67);
    assert.equal((await match('-q', '-f', join(u.home, 'absent'), 'x')).status, 67);
    const r = await match('-q', '-f', join(u.home, 'secret.patterns'), 'x');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^match: .*permission denied/i);
    const usage = await match('-n', 'zero', 'a', 'a');
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /^match: -n/);
  },
);

test(
  'escape: an ordinary address unchanged; a hostile one escaped, and a shell gives it back running nothing',
  { skip },
  async () => {
    assert.deepEqual(await tool(u, 'escape', ['bob+news@example.org']), {
      status: 0,
      stdout: 'bob+news@example.org\n',
      stderr: '',
    });
    const hostile = `$(touch ${MARK})\`touch ${MARK}\`"q"'s;x@example.org`;
    const e = await tool(u, 'escape', [hostile]);
    assert.equal(e.status, 0);
    assert.equal(e.stdout, `\\$\\(touch\\ ${MARK}\\)\\\`touch\\ ${MARK}\\\`\\"q\\"\\'s\\;x@example.org\n`);
    // what Mail Avenger did with a bodytest line: one more pass of a shell
    const back = await shAs(u, 'eval "set -- $(escape "$1")"; printf "%s|%s" "$#" "$1"', [hostile]);
    assert.deepEqual(back, { status: 0, stdout: `1|${hostile}`, stderr: '' });
    assert.equal(existsSync(MARK), false, 'nothing ran');
    assert.equal((await tool(u, 'escape', [])).status, 2);
  },
);
