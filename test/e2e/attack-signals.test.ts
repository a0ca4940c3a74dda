/**
 * Attack 2 of issue 13 (docs/security.md): SIGUSR1 opens Node's inspector (unauthenticated, on
 * 127.0.0.1:9229), from which any local user could run JavaScript inside the daemon.
 *
 * 1. From a system script (EtcDir/unknown, run as AvengerUser) and from a user's script: send
 *    SIGUSR1 to the SMTP process. At df3c8d8 the SMTP process ran as AvengerUser, so the system
 *    script could signal it; now scripts run under other uids than the SMTP process's.
 * 2. As root, SIGUSR1 to every process of the daemon (Node, the C spawner, the perl capture helper): none opens a listening socket
 *    (the SMTP process keeps only its SMTP port), all keep running, and mail still flows.
 * 3. The same with Workers 2: the primary and each SMTP worker (node:cluster forks of bin/asmtpd,
 *    which neutralises SIGUSR1 first) open nothing but the shared SMTP socket and keep serving.
 * Needs root (test accounts, SYN capture for the network-facts process).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';
import { processTree, roleOf } from '../support/procs.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
let etc: string;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  u = createUser('usr1');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  d = await startDaemon({ etcDir: etc, conf: ['LocalDomain a.example', 'Separator +', 'SynFP yes'].join('\n') });
  await d.waitLog((l) => l.event === 'netfacts.start');
  // the scripts know the SMTP process's pid (any local process can find it with ps)
  const signal = `if kill -USR1 ${d.proc.pid} 2>/dev/null; then accept "signal sent by $(id -un)"; else accept "signal refused for $(id -un)"; fi`;
  writeFileSync(join(etc, 'unknown'), `${signal}\n`, { mode: 0o755 });
  writeScript(u, 'rcpt', signal);
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

async function rcpt(to: string): Promise<string> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    await c.cmd('MAIL FROM:<s@remote.example>');
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

/** TCP ports each pid listens on (ss -ltnp). */
function listening(pids: number[]): Map<number, number[]> {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  const found = new Map<number, number[]>();
  for (const line of out.split('\n')) {
    const port = Number(/:(\d+)\s/.exec(line)?.[1]);
    for (const pid of pids) if (line.includes(`pid=${pid},`)) found.set(pid, [...(found.get(pid) ?? []), port]);
  }
  return found;
}

test("a system script (AvengerUser) and a user's script cannot signal the SMTP process", { skip }, async () => {
  assert.match(await rcpt('nobody-here@a.example'), /^250 2\.1\.5 signal refused for /);
  assert.equal(await rcpt(`${u.name}@a.example`), `250 2.1.5 signal refused for ${u.name}`);
  assert.deepEqual(listening([d.proc.pid!]).get(d.proc.pid!), [d.port], 'no inspector port');
});

test('SIGUSR1 from root to every process of the daemon opens no inspector and stops nothing', { skip }, async () => {
  // a script run first, so that the spawner exists
  await rcpt(`${u.name}@a.example`);
  const daemonPid = d.proc.pid!;
  const procs = processTree(daemonPid).filter((p) =>
    ['smtp', 'runner', 'spawner', 'netfacts', 'capture'].includes(roleOf(p, daemonPid)),
  );
  assert.deepEqual(procs.map((p) => roleOf(p, daemonPid)).sort(), ['capture', 'netfacts', 'runner', 'smtp', 'spawner']);
  for (const p of procs) process.kill(p.pid, 'SIGUSR1');
  await new Promise((r) => setTimeout(r, 1500));
  const ports = listening(procs.map((p) => p.pid));
  assert.deepEqual(
    [...ports.entries()],
    [[daemonPid, [d.port]]],
    'only the SMTP port is open; nothing listens on 9229',
  );
  for (const p of procs) assert.doesNotThrow(() => process.kill(p.pid, 0), `${roleOf(p, daemonPid)} still runs`);
  assert.equal(
    await rcpt(`${u.name}@a.example`),
    `250 2.1.5 signal refused for ${u.name}`,
    'mail and scripts still work',
  );
});

test(
  'Workers 2: SIGUSR1 from root to the primary and each worker opens no inspector and stops nothing',
  { skip },
  async () => {
    const w = await startDaemon({ conf: ['LocalDomain a.example', 'Workers 2'].join('\n') });
    try {
      const primary = w.proc.pid!;
      const workers = processTree(primary).filter((p) => roleOf(p, primary) === 'worker');
      assert.equal(workers.length, 2, 'two workers');
      const pids = [primary, ...workers.map((p) => p.pid)];
      for (const pid of pids) process.kill(pid, 'SIGUSR1');
      await new Promise((r) => setTimeout(r, 1500));
      // the shared listening socket shows under every process holding it: the SMTP port, nothing else
      for (const [pid, ports] of listening(pids)) assert.deepEqual([...new Set(ports)], [w.port], `pid ${pid}`);
      for (const pid of pids) assert.doesNotThrow(() => process.kill(pid, 0), `pid ${pid} still runs`);
      for (let i = 0; i < 4; i++) {
        const c = await SmtpClient.connect(w.port);
        try {
          await c.greeting();
          assert.equal((await c.cmd('EHLO client.example')).code, 250, 'still serving');
        } finally {
          c.close();
        }
      }
    } finally {
      await w.stop();
    }
  },
);
