/**
 * Workers (issue 21, item 1): `Workers 2` over real sockets.
 *
 * - MaxClientsPerIP and MaxClients hold over both workers: two connections of one address, each on
 *   its own worker (the `worker` field of session.connect), leave no place for a third on either;
 *   MaxClients counts the connections of both.
 * - AuthMaxFailures counts an address's AUTH failures over both workers.
 * - A worker killed with SIGKILL is logged (worker.exit) and replaced (worker.start, restarted),
 *   while mail keeps flowing: every message of a client that retries its refused or cut sessions
 *   is delivered once, and messages after the restart reach both workers again.
 * - SIGHUP under load reaches every worker (one daemon.reload once both reloaded: new sessions on
 *   either worker have the new MaxRcpts), SIGTERM under load drains both (sessions in DATA get their
 *   250) and no worker is left behind.
 * (test/e2e/faults-signals.test.ts and config-reload.test.ts run with Workers 2 in CI as well:
 * scripts/run-tests.mjs.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient, dotStuff } from '../support/smtp-client.js';

let sink: Sink;
before(async () => {
  sink = await startSink();
});
after(async () => {
  await sink?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** the worker that logged session.connect for this client (by its source port) */
async function workerOf(d: Daemon, c: SmtpClient): Promise<number> {
  const port = c.socket.localPort;
  const line = await d.waitLog((l) => l.event === 'session.connect' && l.port === port);
  return Number(line.worker);
}

/** a connection from `from` whose banner is 220, on the worker `want` accepts (others closed, retried) */
async function connectOn(d: Daemon, from: string, want: (w: number) => boolean): Promise<[SmtpClient, number]> {
  for (let i = 0; i < 200; i++) {
    const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
    const g = await c.greeting();
    assert.match(g.last, /^220 /);
    const w = await workerOf(d, c);
    if (want(w)) return [c, w];
    // its place is given back when the worker saw the close: wait for the session's end
    const ends = (): number => d.logs.filter((l) => l.event === 'session.end' && l.ip === from).length;
    const before = ends();
    await c.cmd('QUIT');
    c.close();
    await d.waitLog(() => ends() > before);
  }
  throw new Error('the kernel never handed a connection to the other worker');
}

test('Workers 2: MaxClientsPerIP and MaxClients are counted over both workers', async () => {
  const d = await startDaemon({ conf: 'Workers 2\nMaxClients 3\nMaxClientsPerIP 2' });
  const open: SmtpClient[] = [];
  try {
    const start = await d.waitLog((l) => l.event === 'daemon.start');
    assert.equal(start.workers, 2);
    assert.equal((start.worker_pids as number[]).length, 2);
    const [a, wa] = await connectOn(d, '127.0.0.5', () => true);
    open.push(a);
    const [b, wb] = await connectOn(d, '127.0.0.5', (w) => w !== wa);
    open.push(b);
    assert.notEqual(wa, wb, 'the two connections of 127.0.0.5 are on different workers');
    // a third from the same address, on whichever worker: refused (2 counted over both)
    for (let i = 0; i < 6; i++) {
      const third = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.5');
      assert.equal((await third.greeting()).last, '421 4.7.0 too many connections from your address, try again later');
      assert.ok(await third.waitClosed());
    }
    const refused = (limit: string): number =>
      d.logs.filter((l) => l.event === 'session.refused' && l.limit === limit).length;
    await d.waitLog(() => refused('max-per-ip') >= 6);
    const [c] = await connectOn(d, '127.0.0.6', () => true);
    open.push(c);
    // MaxClients 3: both workers together hold 3
    for (let i = 0; i < 6; i++) {
      const fourth = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.7');
      assert.equal((await fourth.greeting()).last, '421 4.7.0 too many connections, try again later');
      assert.ok(await fourth.waitClosed());
    }
    await d.waitLog(() => refused('max-clients') >= 6);
    // a place comes back when a client leaves (whichever worker it was on)
    await open.shift()!.cmd('QUIT');
    let again: SmtpClient | null = null;
    for (let i = 0; i < 50 && !again; i++) {
      const c2 = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.7');
      if ((await c2.greeting()).code === 220) again = c2;
      else await sleep(100);
    }
    assert.ok(again, 'a place came back after a client left');
    open.push(again);
  } finally {
    for (const c of open) c.close();
    await d.stop();
  }
});

test('Workers 2: AuthMaxFailures counts an address over both workers', async () => {
  const etc = mkdtempSync(join(tmpdir(), 'asmtpd-workers-auth-'));
  chmodSync(etc, 0o755);
  const hash = execFileSync('openssl', ['passwd', '-6', '-salt', 'workers', 'right secret'], { encoding: 'utf8' });
  writeFileSync(join(etc, 'auth-users'), `alice:${hash.trim()}\n`, { mode: 0o644 });
  chmodSync(join(etc, 'auth-users'), 0o644);
  const d = await startDaemon({
    conf: ['Workers 2', `AuthFile ${join(etc, 'auth-users')}`, 'InsecureAuth yes', 'AuthMaxFailures 3'].join('\n'),
  });
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  try {
    // one failure on each of the first two connections, which are on different workers
    const [a, wa] = await connectOn(d, '127.0.0.9', () => true);
    await a.cmd('EHLO a.test');
    assert.match((await a.cmd(`AUTH PLAIN ${b64('\0alice\0wrong 1')}`)).last, /^535 5\.7\.8/);
    a.close();
    const [b] = await connectOn(d, '127.0.0.9', (w) => w !== wa);
    await b.cmd('EHLO b.test');
    assert.match((await b.cmd(`AUTH PLAIN ${b64('\0alice\0wrong 2')}`)).last, /^535 5\.7\.8/);
    // the third failure of the address (first of this connection) reaches AuthMaxFailures
    assert.match((await b.cmd(`AUTH PLAIN ${b64('\0alice\0wrong 3')}`)).last, /^421 4\.7\.0/);
    b.close();
    // now refused at once on whichever worker, even with the right password
    for (let i = 0; i < 4; i++) {
      const c = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.9');
      await c.greeting();
      await c.cmd('EHLO c.test');
      assert.match((await c.cmd(`AUTH PLAIN ${b64('\0alice\0right secret')}`)).last, /^421 4\.7\.0/);
      c.close();
    }
    await d.waitLog(() => d.logs.filter((l) => l.event === 'auth.decision' && l.result === 'limit').length >= 5);
  } finally {
    await d.stop();
    rmSync(etc, { recursive: true, force: true });
  }
});

function message(token: string): string {
  return `From: a@client.test\r\nTo: r@elsewhere.test\r\nSubject: ${token}\r\nX-Token: ${token}\r\n\r\nbody of ${token}\r\n`;
}

/** one message in its own session; 'lost' when the session broke before a reply to the dot */
async function sendOne(port: number, token: string): Promise<'250' | 'refused' | 'lost'> {
  let c: SmtpClient;
  try {
    c = await SmtpClient.connect(port);
  } catch {
    return 'refused';
  }
  try {
    const g = await c.greeting();
    if (g.code !== 220) return 'refused';
    const r = await c.send('a@client.test', ['r@elsewhere.test'], message(token));
    await c.cmd('QUIT').catch(() => undefined);
    return r.code === 250 ? '250' : 'lost';
  } catch {
    return 'lost';
  } finally {
    c.close();
  }
}

function delivered(token: string): number {
  return sink.messages.filter((m) => m.data.toString('latin1').includes(`X-Token: ${token}\r\n`)).length;
}

test('Workers 2: a worker killed with SIGKILL is replaced and logged; mail keeps flowing', async (t) => {
  const d = await startDaemon({
    conf: ['Workers 2', `RelayHost 127.0.0.1:${sink.port}`, 'RelayNet 127.0.0.1/32', 'MaxClientsPerIP 100'].join('\n'),
  });
  try {
    const start = await d.waitLog((l) => l.event === 'daemon.start');
    const [victim, survivor] = start.worker_pids as number[];
    let running = true;
    const outcomes: Record<string, number> = { '250': 0, retried: 0 };
    const ok = new Set<string>();
    const lostOnce = new Set<string>();
    // 4 clients sending one message per session, each retrying until its message got 250
    const client = async (k: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const token = `KILL-${k}-${i}`;
        for (let attempt = 0; ; attempt++) {
          const r = await sendOne(d.port, token);
          if (r === '250') break;
          if (r === 'lost') lostOnce.add(token);
          outcomes.retried!++;
          if (attempt > 20) throw new Error(`${token}: no 250 after ${attempt} attempts`);
          await sleep(100);
        }
        ok.add(token);
        outcomes['250']!++;
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(client));
    await sleep(500);
    process.kill(victim!, 'SIGKILL');
    const exit = await d.waitLog((l) => l.event === 'worker.exit');
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.pid, victim);
    const replaced = await d.waitLog((l) => l.event === 'worker.start' && l.restarted === true);
    assert.notEqual(replaced.pid, victim);
    // the survivor served on meanwhile; after the restart, both workers serve again
    const restartedWorker = replaced.worker;
    const sessionsBefore = d.logs.length;
    await d.waitLog(
      (l) => l.event === 'session.connect' && l.worker === restartedWorker && d.logs.indexOf(l) >= sessionsBefore,
      15_000,
    );
    running = false;
    await load;
    t.diagnostic(`${outcomes['250']} messages delivered, ${outcomes.retried} sessions retried`);
    // every message that got 250 was delivered; twice only if a session died after the downstream
    // took it and before its client heard 250 (the client then sent it again: SMTP's at-least-once)
    const tokens = sink.messages
      .map((m) => /X-Token: (KILL-\S+)/.exec(m.data.toString('latin1'))?.[1])
      .filter((x): x is string => !!x);
    for (const token of ok) assert.ok(tokens.includes(token), `${token} delivered`);
    const twice = tokens.filter((x, i) => tokens.indexOf(x) !== i);
    for (const token of twice) assert.ok(lostOnce.has(token), `${token} delivered twice without a lost session`);
    assert.ok(outcomes['250']! >= 8);
    for (const pid of [survivor!, replaced.pid as number]) process.kill(pid, 0);
    assert.ok(delivered('KILL-0-0') >= 1);
  } finally {
    await d.stop();
  }
});

test('Workers 2: SIGHUP under load reloads both workers; SIGTERM under load drains both, none left', async (t) => {
  const conf = (maxRcpts: number): string =>
    [
      'Workers 2',
      `MaxRcpts ${maxRcpts}`,
      `RelayHost 127.0.0.1:${sink.port}`,
      'RelayNet 127.0.0.1/32',
      'MaxClientsPerIP 100',
    ].join('\n');
  const d = await startDaemon({ conf: conf(100) });
  const exited = new Promise<number | null>((r) => d.proc.once('exit', (code) => r(code)));
  try {
    const start = await d.waitLog((l) => l.event === 'daemon.start');
    const pids = start.worker_pids as number[];
    // 20 sessions in a slow DATA while the configuration is reloaded
    let inData = 0;
    const slow = async (i: number): Promise<string> => {
      const c = await SmtpClient.connect(d.port);
      try {
        await c.greeting();
        await c.cmd('EHLO slow.client.test');
        await c.cmd('MAIL FROM:<s@client.test>');
        await c.cmd('RCPT TO:<r@elsewhere.test>');
        assert.match((await c.cmd('DATA')).last, /^354 /);
        inData++;
        const data = Buffer.concat([dotStuff(message(`HUP-${i}`)), Buffer.alloc(6000, 'x'), Buffer.from('\r\n.\r\n')]);
        for (let k = 0; k < 10; k++) {
          c.write(data.subarray((k * data.length) / 10, ((k + 1) * data.length) / 10));
          await sleep(100);
        }
        return (await c.reply(30_000)).last;
      } finally {
        c.close();
      }
    };
    const load = Promise.all(Array.from({ length: 20 }, (_, i) => slow(i)));
    await sleep(300);
    d.writeConf(conf(1));
    d.signal('SIGHUP');
    const reload = await d.waitLog((l) => l.event === 'daemon.reload');
    assert.equal(reload.workers, 2);
    assert.equal(reload.failed, undefined);
    const replies = await load;
    assert.deepEqual(
      replies.filter((r) => !r.startsWith('250 ')),
      [],
    );
    // new sessions on either worker have the new MaxRcpts
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const c = await SmtpClient.connect(d.port);
      await c.greeting();
      await c.cmd('EHLO probe.test');
      await c.cmd('MAIL FROM:<p@client.test>');
      await c.cmd('RCPT TO:<r1@elsewhere.test>');
      assert.match((await c.cmd('RCPT TO:<r2@elsewhere.test>')).last, /^452 4\.5\.3 /);
      seen.add(await workerOf(d, c));
      await c.cmd('QUIT');
      c.close();
    }
    assert.equal(seen.size, 2, 'both workers answered with the new configuration');

    // SIGTERM while 10 sessions are in DATA: each gets its 250, the daemon exits 0, no worker left
    inData = 0;
    const draining = Promise.all(Array.from({ length: 10 }, (_, i) => slow(100 + i)));
    await d.waitLog(() => inData >= 10, 10_000);
    d.signal('SIGTERM');
    const term = await draining;
    assert.deepEqual(
      term.filter((r) => !r.startsWith('250 ')),
      [],
    );
    assert.equal(await exited, 0);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
    t.diagnostic(`reload: ${JSON.stringify(reload)}`);
  } finally {
    await d.stop();
  }
});
