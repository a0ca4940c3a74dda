// The unprivileged mode, and what the client does when the runner dies.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRunner } from './client.js';
import { DEFAULT_LIMITS, type RcptRequest, type RunnerSettings } from './protocol.js';
import { createTempUser, isRoot, TEST_ENV_NAMES, waitForEmptyGroup, type TempUser } from './testing/users.js';

describe('modes and failure handling', { skip: !isRoot && 'needs root (creates users)' }, () => {
  let user: TempUser;
  let av: TempUser;
  let settings: RunnerSettings;
  before(() => {
    user = createTempUser();
    av = createTempUser();
    settings = {
      etcDir: av.base,
      avengerUser: av.name,
      passwdFile: null,
      spoolDir: null,
      daemonUid: null,
      deniedUids: [],
      envNames: TEST_ENV_NAMES,
      fixedEnv: {},
      toolsDir: null,
      limits: DEFAULT_LIMITS,
    };
    for (const [name, body] of [
      ['rcpt', 'echo "$(id -u) $(id -g) $(id -G) $(umask)"; accept ok\n'],
      ['rcpt+slow', 'echo $$ > "$HOME/pgid"; sleep 1000 & sleep 1000\n'],
    ] as const) {
      writeFileSync(join(user.avengerDir, name), body, { mode: 0o644 });
      chownSync(join(user.avengerDir, name), user.uid, user.gid);
    }
  });
  after(() => {
    user?.remove();
    av?.remove();
  });

  const rcpt = (candidates: string[], timeoutMs = 10_000): RcptRequest => ({
    kind: 'rcpt',
    scope: 'user',
    account: user.name,
    candidates,
    env: {},
    timeoutMs,
  });

  test('not root: everything runs as the invoking user, with the limits, and nothing is refused for who it is', () => {
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const code = `import { runInProcess } from ${JSON.stringify(index)};
      const r = await runInProcess(${JSON.stringify(rcpt(['rcpt']))}, ${JSON.stringify(settings)});
      process.stdout.write(JSON.stringify(r));`;
    const out = execFileSync(
      'setpriv',
      [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        '--clear-groups',
        '--',
        process.execPath,
        '--input-type=module',
        '-e',
        code,
      ],
      { cwd: user.home, env: { PATH: '/usr/bin:/bin' } },
    ).toString();
    const r = JSON.parse(out);
    assert.equal(r.kind, 'ran', out);
    assert.equal(r.uid, user.uid);
    assert.equal(r.stdout.split(' ')[0], String(user.uid));
    assert.deepEqual(r.decision, { verb: 'accept', args: ['ok'] });
  });

  test('runner death: pending and later requests resolve to errors; no silent restart', async () => {
    let exitSeen: boolean | undefined;
    const runner = await startRunner({
      settings,
      onLog: () => {},
      onExit: (_code, _signal, expected) => (exitSeen = expected),
    });
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

  test('a runner whose settings are bad, or whose AvengerUser is missing or unfit, does not start', async () => {
    await assert.rejects(
      startRunner({ settings: { ...settings, avengerUser: 'no-such-avenger' }, onLog: () => {} }),
      /exited before it was ready/,
    );
    await assert.rejects(
      startRunner({ settings: { ...settings, avengerUser: 'nobody' }, onLog: () => {} }),
      /exited before it was ready/,
    );
    await assert.rejects(
      startRunner({ settings: { ...settings, limits: { ...DEFAULT_LIMITS, cpuSeconds: -1 } }, onLog: () => {} }),
      /exited before it was ready/,
    );
  });
});
