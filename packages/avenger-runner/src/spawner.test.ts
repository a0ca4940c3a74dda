// Tests of the spawner (libexec/spawner.c) driven directly (as root, a real temporary user): how a child's end
// is noticed (pidfd, no polling), when its pid reaches the runner (with the result for a quick
// child, on its own for a slow one, so the deadline can kill it), and that a wait for the exec
// never stalls the runs beside it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ChildOutcome } from './child.js';
import { DEFAULT_LIMITS } from './protocol.js';
import { Spawner, type PrivilegedChildSpec } from './spawner.js';
import { createTempUser, isRoot, waitForEmptyGroup, type TempUser } from './testing/users.js';

type Exited = Extract<ChildOutcome, { kind: 'exited' }>;

describe('spawner', { skip: !isRoot && 'needs root (creates a user)' }, () => {
  let user: TempUser;
  let spawner: Spawner;

  before(() => {
    user = createTempUser();
    spawner = new Spawner(DEFAULT_LIMITS);
  });
  after(() => {
    spawner?.close();
    user?.remove();
  });

  const spec = (script: string, extra: Partial<PrivilegedChildSpec> = {}): PrivilegedChildSpec => ({
    file: '/bin/sh',
    args: ['-c', script],
    env: { PATH: '/usr/bin:/bin' },
    cwd: user.home,
    decisionChannel: true,
    timeoutMs: 10_000,
    maxOutputBytes: 65536,
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    ...extra,
  });
  const exited = async (p: Promise<ChildOutcome>): Promise<Exited> => {
    const o = await p;
    assert.equal(o.kind, 'exited', JSON.stringify(o));
    return o as Exited;
  };

  test('a quick child: status, output, decision and pid come back, and its group is forgotten', async () => {
    const live = new Set<number>();
    const o = await exited(spawner.run(spec("echo out; echo err >&2; printf 'x' >&3; exit 3", { liveGroups: live })));
    assert.equal(o.exitCode, 3);
    assert.equal(o.stdout.toString(), 'out\n');
    assert.equal(o.stderr.toString(), 'err\n');
    assert.equal(o.decisionBytes.toString(), 'x');
    assert.ok(o.pid > 1);
    assert.equal(live.size, 0);
  });

  test('a child that closes its pipes long before it ends is reported when it ends, with its own status', async () => {
    const o = await exited(spawner.run(spec('exec >&- 2>&- 3>&-; sleep 0.4; exit 7')));
    assert.equal(o.exitCode, 7);
    assert.ok(o.durationMs >= 350, `reported after ${o.durationMs} ms`);
  });

  test("a slow child's pid reaches the runner while it runs, and the deadline kills its group", async () => {
    const live = new Set<number>();
    const run = spawner.run(spec('sleep 1000 & sleep 1000', { liveGroups: live, timeoutMs: 1500 }));
    for (let i = 0; i < 100 && live.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(live.size, 1, 'no pid within 1 s of the start');
    const [pid] = [...live];
    const o = await exited(run);
    assert.equal(o.timedOut, true);
    assert.equal(o.signal, 'SIGKILL');
    assert.equal(o.pid, pid);
    assert.deepEqual(await waitForEmptyGroup(pid!), []);
  });

  test('runs side by side: a slow one does not hold up quick ones, and each gets its own result', async () => {
    const slow = spawner.run(spec('sleep 3; echo slow'));
    const quick = await Promise.all(
      Array.from({ length: 20 }, (_, i) => exited(spawner.run(spec(`echo ${i}; exit ${i % 5}`)))),
    );
    quick.forEach((o, i) => {
      assert.equal(o.stdout.toString(), `${i}\n`);
      assert.equal(o.exitCode, i % 5);
      assert.ok(o.durationMs < 2500, `quick run ${i} took ${o.durationMs} ms`);
    });
    assert.equal((await exited(slow)).stdout.toString(), 'slow\n');
  });

  test('a program that cannot be executed: 127 and the reason on stderr, nothing hangs', async () => {
    const o = await exited(spawner.run({ ...spec(''), file: '/nonexistent/program', args: [] }));
    assert.equal(o.exitCode, 127);
    assert.match(o.stderr.toString(), /nonexistent/);
  });
});
