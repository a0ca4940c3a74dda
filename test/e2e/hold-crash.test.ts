/**
 * The hold queue survives kill -9 (issue 20): 2,000 held messages are delivered to a sink by the
 * daemon's retries and by `asmtpd --flush` running at the same time, while both are killed with
 * SIGKILL at random points of the delivery (after a random number of messages reached the sink)
 * and started again. At the end every message was delivered at least once and none is left in the
 * queue (nothing lost); the duplicates are counted and must stay within the documented window
 * (docs/hold-queue.md): at most one per message in flight in a killed process, i.e.
 * RelayConnections per kill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeld } from 'asmtpd/dist/relay/hold-queue.js';
import { ASMTPD_BIN } from '../support/daemon.js';
import { until } from '../support/hold-cli.js';
import { freePort } from '../support/ports.js';
import { startSink, type Sink } from '../support/sink.js';

const MESSAGES = 2000;
const CONNECTIONS = 10;

interface Proc {
  proc: ChildProcess;
  exited: Promise<void>;
  stderr: string[];
}

function start(args: string[]): Proc {
  const proc = spawn(process.execPath, [ASMTPD_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, exited, stderr };
}

function queued(queue: string): number {
  let n = 0;
  for (const sub of ['new', 'cur', 'work', 'hold', 'failed'])
    try {
      n += readdirSync(join(queue, sub)).length;
    } catch {
      // not made yet
    }
  return n;
}

test('kill -9 of the daemon and of --flush during the delivery of 2,000 held messages: nothing lost, duplicates within the window', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-crash-'));
  chmodSync(dir, 0o755);
  const dbDir = join(dir, 'db');
  const queue = join(dbDir, 'queue');
  let sink: Sink | null = null;
  const running = new Set<Proc>();
  try {
    sink = await startSink({ kind: 'accept' });
    const conf = join(dir, 'asmtpd.conf');
    writeFileSync(
      conf,
      [
        `SMTPPort ${await freePort()}`,
        'BindAddr 127.0.0.1',
        `DBDir ${dbDir}`,
        `EtcDir ${dir}`,
        'Hostname mx.example.test',
        'DNSResolver system',
        'DNSServer 127.0.0.1:9',
        'SMTPCB no',
        'SynFP no',
        'BlockUnknownRcpts off',
        `RelayHost 127.0.0.1:${sink.port}`,
        `RelayConnections ${CONNECTIONS}`,
        'HoldRetry 1s 1s',
        'RelayTimeout 10s',
      ].join('\n') + '\n',
    );
    // the queue as the daemon makes it (owned by DaemonUser when run as root), then 2,000 messages in it
    const first = start(['-d', '-f', conf]);
    running.add(first);
    await until('the daemon', () => first.stderr.join('').includes('"daemon.start"'), 30_000);
    first.proc.kill('SIGTERM');
    await first.exited;
    running.delete(first);
    mkdirSync(queue, { recursive: true });
    const owner = statSync(dbDir); // DaemonUser's (as root), or ours
    chownSync(queue, owner.uid, owner.gid);
    const spool = join(dir, 'spool');
    for (let i = 0; i < MESSAGES; i++) {
      writeFileSync(spool, `Subject: crash test ${i}\r\nX-Seq: ${i}\r\n\r\nmessage ${i}\r\n`);
      const w = await writeHeld(
        queue,
        {
          id: `SEQ${i}`,
          from: 'alice@sender.test',
          to: [`r${i}@remote.test`],
          smtputf8: false,
          eightBit: false,
          headerPrefix: Buffer.alloc(0),
          spoolPath: spool,
          size: statSync(spool).size,
        },
        { hostname: 'mx.example.test', now: new Date(Date.now() - 60_000) },
      );
      assert.equal(w.kind, 'held');
      if (w.kind === 'held') chownSync(w.path, owner.uid, owner.gid);
    }
    for (const sub of readdirSync(queue)) chownSync(join(queue, sub), owner.uid, owner.gid);
    assert.equal(queued(queue), MESSAGES);

    // kill rounds: the daemon (retries) and a --flush at once, each killed after a random number of deliveries
    let kills = 0;
    const deliveredBefore = (): number => sink!.messages.length;
    for (let round = 0; round < 6 && queued(queue) > 0; round++) {
      const daemon = start(['-d', '-f', conf]);
      const flush = start(['--flush', '-f', conf]);
      running.add(daemon);
      running.add(flush);
      for (const p of [flush, daemon]) {
        const base = deliveredBefore();
        const after = 30 + Math.floor(Math.random() * 250);
        await until(
          `deliveries before the kill (round ${round}, ${deliveredBefore()} delivered, ${queued(queue)} queued; ${p.stderr.join('').slice(-2000)})`,
          () => deliveredBefore() >= base + after || queued(queue) === 0 || p.proc.exitCode !== null,
          60_000,
        );
        if (p.proc.exitCode === null) {
          p.proc.kill('SIGKILL');
          kills++;
        }
        await p.exited;
        running.delete(p);
      }
    }
    // then a --flush that is left alone finishes the work
    for (let i = 0; i < 3 && queued(queue) > 0; i++) {
      const last = start(['--flush', '-f', conf]);
      running.add(last);
      await last.exited;
      running.delete(last);
      assert.equal(last.proc.exitCode, 0, last.stderr.join(''));
    }

    const seen = new Map<number, number>();
    for (const m of sink.messages) {
      const seq = Number(/X-Seq: (\d+)/.exec(m.data.toString('latin1'))?.[1]);
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
    }
    const missing = Array.from({ length: MESSAGES }, (_, i) => i).filter((i) => !seen.has(i));
    const duplicates = sink.messages.length - seen.size;
    console.log(
      `# crash test: ${MESSAGES} messages, ${kills} kills -9, ${sink.messages.length} deliveries, ${duplicates} duplicates (window: ≤ ${CONNECTIONS} per kill = ${kills * CONNECTIONS})`,
    );
    assert.deepEqual(missing, [], 'nothing lost');
    assert.equal(queued(queue), 0, 'nothing left in the queue');
    assert.deepEqual(readdirSync(join(queue, 'meta')), [], 'no record left');
    assert.ok(kills >= 4, `killed during delivery (${kills})`);
    assert.ok(duplicates <= kills * CONNECTIONS, `${duplicates} duplicates within ${kills} × ${CONNECTIONS}`);
  } finally {
    for (const p of running) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
