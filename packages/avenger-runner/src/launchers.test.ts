// The setpriv launcher, the unprivileged mode, and what the client does when the runner dies.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRunner } from './client.js';
import type { RcptRequest } from './protocol.js';
import { runInProcess } from './runner.js';
import { createTempUser, isRoot, waitForEmptyGroup, type TempUser } from './test-support.js';

describe('launchers and failure handling', { skip: !isRoot && 'needs root (creates users)' }, () => {
  let user: TempUser;
  before(() => {
    user = createTempUser();
    for (const [name, body] of [
      ['rcpt', 'echo "$(id -u) $(id -g) $(id -G) $(umask)"; accept ok\n'],
      ['rcpt+slow', 'echo $$ > "$HOME/pgid"; sleep 1000 & sleep 1000\n'],
    ] as const) {
      writeFileSync(join(user.avengerDir, name), body, { mode: 0o644 });
      chownSync(join(user.avengerDir, name), user.uid, user.gid);
    }
  });
  after(() => user?.remove());

  const rcpt = (candidates: string[], timeoutMs = 10_000): RcptRequest => ({
    kind: 'rcpt', uid: user.uid, gid: user.gid, groups: user.groups, user: user.name, home: user.home,
    dir: user.avengerDir, candidates, env: { HOME: user.home }, timeoutMs,
  });

  test('setpriv launcher: same identity, same group kill', async () => {
    const r = await runInProcess(rcpt(['rcpt']), { launcher: 'setpriv' });
    assert.equal(r.kind, 'ran');
    if (r.kind !== 'ran') return;
    const [uid, gid, ...rest] = r.stdout.trim().split(' ');
    const umask = rest.pop();
    assert.deepEqual([Number(uid), Number(gid), umask], [user.uid, user.gid, '0077']);
    assert.deepEqual(rest.map(Number).sort(), [...user.groups].sort());
    assert.deepEqual(r.decision, { verb: 'accept', args: ['ok'] });
    const slow = await runInProcess(rcpt(['rcpt+slow'], 300), { launcher: 'setpriv' });
    assert.equal(slow.kind === 'ran' && slow.timedOut, true);
    assert.deepEqual(await waitForEmptyGroup(Number(readFileSync(join(user.home, 'pgid'), 'utf8'))), []);
  });

  test('not root: everything runs as the invoking user, whatever the request says', () => {
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const code = `import { runInProcess } from ${JSON.stringify(index)};
      const r = await runInProcess(${JSON.stringify({ ...rcpt(['rcpt']), uid: 4242, gid: 4242, groups: [4242] })});
      process.stdout.write(JSON.stringify(r));`;
    const out = execFileSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--',
      process.execPath, '--input-type=module', '-e', code], { cwd: user.home, env: { PATH: '/usr/bin:/bin' } }).toString();
    const r = JSON.parse(out);
    assert.equal(r.kind, 'ran');
    assert.equal(r.uid, user.uid);
    assert.equal(r.stdout.split(' ')[0], String(user.uid));
    assert.deepEqual(r.decision, { verb: 'accept', args: ['ok'] });
  });

  test('runner death: pending and later requests resolve to errors; no silent restart', async () => {
    let exitSeen: boolean | undefined;
    const runner = await startRunner({ onLog: () => {}, onExit: (_code, _signal, expected) => (exitSeen = expected) });
    const pending = runner.run(rcpt(['rcpt+slow'], 60_000));
    await new Promise((resolve) => setTimeout(resolve, 300));
    process.kill(runner.pid, 'SIGKILL');
    const r = await pending;
    assert.equal(r.kind, 'error');
    assert.equal(runner.alive, false);
    assert.equal(exitSeen, false);
    const later = await runner.run(rcpt(['rcpt']));
    assert.equal(later.kind === 'error' && /not restarted/.test(later.reason), true);
    // The spawner saw its stdin close and took the script's process group down.
    assert.deepEqual(await waitForEmptyGroup(Number(readFileSync(join(user.home, 'pgid'), 'utf8'))), []);
  });
});
