/**
 * Faults (issue 7, item 4): policy scripts that hang, crash, fork-bomb or print megabytes, run by
 * the real runner as real users through the real daemon (AvengerTimeout 2s). What must hold:
 *   - hang (a busy loop that ignores SIGTERM/SIGHUP/SIGINT): 451 4.3.0 at AvengerTimeout, and no
 *     process of the user is left; eight hanging at once (`sleep 60`) do not hold up another
 *     user's script;
 *   - crash (`kill -SEGV $$`): 451 4.3.0, logged as killed by SIGSEGV;
 *   - fork bomb: bounded by the per-user process limit (RLIMIT_NPROC 512, set by the runner),
 *     451 4.3.0 at AvengerTimeout, every process of the bomb gone afterwards, the daemon answers
 *     during the bomb, another user's script runs during and after it, and the same user's next
 *     script runs again;
 *   - megabytes on stdout and stderr: the runner keeps 64 KiB of each (MAX_OUTPUT_BYTES) and drains
 *     the rest, so the script never blocks, and its decision (fd 3, separate) still counts.
 * The simpler cases (exit 3, no decision, a background `sleep` killed with the group, unsafe
 * modes) are in policy.test.ts. Needs root (test accounts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const TIMEOUT_MS = 2000;
const NPROC = 512;
const FAILED = '451 4.3.0 local policy error, try again later';

let alice: TestUser;
let bob: TestUser;
let etc: string;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  alice = createUser('fault');
  bob = createUser('bystand');
  writeScript(alice, 'rcpt+ok', 'accept "alice ok"');
  writeScript(alice, 'rcpt+hang', "trap '' TERM HUP INT; while :; do :; done");
  writeScript(alice, 'rcpt+sleep', 'sleep 60; accept "not reached"');
  writeScript(alice, 'rcpt+crash', 'kill -SEGV $$; accept "not reached"');
  writeScript(alice, 'rcpt+bomb', 'b() { b | b & }; b; sleep 60; accept "survived"');
  writeScript(
    alice,
    'rcpt+bigout',
    'head -c 5000000 /dev/zero | tr \'\\0\' x; head -c 3000000 /dev/zero >&2; accept "after megabytes"',
  );
  writeScript(
    alice,
    'rcpt+bigreject',
    'yes \'line of output\' | head -c 4000000; reject "554 5.7.1 refused after megabytes"',
  );
  writeScript(bob, 'rcpt', 'accept "bob ok"');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(alice) + passwdLine(bob));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerTimeout ${TIMEOUT_MS / 1000}s`,
      'RelayNet 192.0.2.0/24',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  for (const u of [alice, bob]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

async function rcpt(to: string): Promise<{ reply: string; ms: number }> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    await c.cmd('MAIL FROM:<s@remote.example>');
    const t0 = Date.now();
    const r = await c.cmd(`RCPT TO:<${to}>`);
    return { reply: r.last, ms: Date.now() - t0 };
  } finally {
    c.close();
  }
}

/**
 * pids of the processes whose real uid is `uid`: live ones, or with zombies too (which RLIMIT_NPROC
 * counts until they are reaped: a bomb's processes exit at once and wait for init to reap them)
 */
function processesOf(uid: number, zombies = false): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid && (zombies || !/^State:\s+Z/m.test(status)))
        out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

async function noneLeft(uid: number, ms: number, zombies = false): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = processesOf(uid, zombies);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = processesOf(uid, zombies);
  }
  return left;
}

const runnerPid = (): number => Number(d.logs.find((l) => l.event === 'daemon.privileges')?.runner_pid);

test(
  'a script that hangs (busy loop, ignores TERM): 451 4.3.0 at AvengerTimeout, nothing of it left',
  { skip },
  async () => {
    const r = await rcpt(`${alice.name}+hang@a.example`);
    assert.equal(r.reply, FAILED);
    assert.ok(r.ms >= TIMEOUT_MS - 100 && r.ms < TIMEOUT_MS + 2000, `answered after ${r.ms} ms`);
    assert.deepEqual(await noneLeft(alice.uid, 3000), [], 'no process of the user is left');
    const line = await d.waitLog((l) => l.event === 'policy.failed' && String(l.reason).includes('rcpt+hang'));
    assert.match(String(line.reason), /timed out/);
  },
);

test("eight hanging scripts at once do not hold up another user's script", { skip }, async () => {
  // sleeping, not spinning: this is about the runner serving requests in parallel, not CPU
  const hangs = Array.from({ length: 8 }, () => rcpt(`${alice.name}+sleep@a.example`));
  await new Promise((r) => setTimeout(r, 300));
  const b = await rcpt(`${bob.name}@a.example`);
  assert.equal(b.reply, '250 2.1.5 bob ok');
  assert.ok(b.ms < TIMEOUT_MS - 300, `bob answered in ${b.ms} ms while alice's scripts hang`);
  for (const h of await Promise.all(hangs)) assert.equal(h.reply, FAILED);
  assert.deepEqual(await noneLeft(alice.uid, 3000), []);
});

test('a script that crashes (SIGSEGV): 451 4.3.0, logged as killed by SIGSEGV', { skip }, async () => {
  const r = await rcpt(`${alice.name}+crash@a.example`);
  assert.equal(r.reply, FAILED);
  assert.ok(r.ms < 2000);
  const line = await d.waitLog((l) => l.event === 'policy.failed' && String(l.reason).includes('rcpt+crash'));
  assert.match(String(line.reason), /killed by SIGSEGV/);
});

test(
  `a fork bomb: at most ${NPROC} processes of the user, 451 4.3.0, all gone; the daemon and other users unaffected`,
  { skip },
  async (t) => {
    const runner = runnerPid();
    const bomb = rcpt(`${alice.name}+bomb@a.example`);
    // watch the bomb grow, and check the machine still works while it runs
    let peak = 0;
    let peakLive = 0;
    let during: { reply: string; ms: number } | null = null;
    let noopMs = -1;
    const t0 = Date.now();
    while (Date.now() - t0 < TIMEOUT_MS - 500) {
      peak = Math.max(peak, processesOf(alice.uid, true).length);
      peakLive = Math.max(peakLive, processesOf(alice.uid).length);
      if (Date.now() - t0 > 700 && during === null) {
        const c = await SmtpClient.connect(d.port);
        await c.greeting();
        const n0 = Date.now();
        await c.cmd('NOOP');
        noopMs = Date.now() - n0;
        c.close();
        during = await rcpt(`${bob.name}@a.example`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await bomb;
    t.diagnostic(
      `peak ${peak} processes of the user (${peakLive} of them live at once, the rest zombies); NOOP during the bomb ${noopMs} ms; bob's RCPT during the bomb ${JSON.stringify(during)}; bomb answered after ${r.ms} ms`,
    );
    assert.equal(r.reply, FAILED);
    assert.ok(r.ms < TIMEOUT_MS + 3000, `answered after ${r.ms} ms`);
    assert.ok(peak > 50, `the bomb did fork (${peak})`);
    assert.ok(peak <= NPROC, `bounded by RLIMIT_NPROC (${peak})`);
    assert.ok(noopMs >= 0 && noopMs < 1000, `the daemon answered NOOP in ${noopMs} ms`);
    assert.equal(during?.reply, '250 2.1.5 bob ok', "another user's script ran during the bomb");
    // zombies too: they count against RLIMIT_NPROC, and pid 1 is not always one that reaps
    // (containers, this CI's VM), so the spawner reaps the orphans itself as their subreaper
    assert.deepEqual(await noneLeft(alice.uid, 5000, true), [], 'every process of the bomb is gone, zombies included');
    assert.equal((await rcpt(`${bob.name}@a.example`)).reply, '250 2.1.5 bob ok');
    assert.equal(
      (await rcpt(`${alice.name}+ok@a.example`)).reply,
      '250 2.1.5 alice ok',
      "the same user's next script runs",
    );
    assert.equal(runnerPid(), runner);
    assert.equal(d.proc.exitCode, null);
    assert.deepEqual(
      d.logs.filter((l) => l.event === 'daemon.error' || l.event === 'runner.exit'),
      [],
    );
  },
);

test('megabytes of output: the runner drains and caps it, the decision still counts', { skip }, async () => {
  const a = await rcpt(`${alice.name}+bigout@a.example`);
  assert.equal(a.reply, '250 2.1.5 after megabytes');
  assert.ok(a.ms < TIMEOUT_MS, `answered in ${a.ms} ms`);
  const b = await rcpt(`${alice.name}+bigreject@a.example`);
  assert.equal(b.reply, '554 5.7.1 refused after megabytes');
  assert.ok(b.ms < TIMEOUT_MS, `answered in ${b.ms} ms`);
});
