// bench/hold-flush — flushing held mail: asmtpd's hold queue vs Postfix's own queue, to smtp-sink.
//
//   sudo node bench/hold-flush/run.mjs [--messages 2000] [--rounds 3] [--size 2048]
//
// Per round, in rotating order (asmtpd first in odd rounds, Postfix first in even ones):
//   asmtpd   N messages written to a fresh HoldQueue (relay/hold-queue.ts writeHeld, as the daemon
//            holds them), then `asmtpd --flush` (RelayHost = smtp-sink, RelayConnections 20); timed
//            from its start to the sink counting N more messages (the process's start included);
//            CPU: user+sys of the --flush process (/usr/bin/time).
//   postfix  a private instance (test/support/postfix.ts, relay mode to the same sink) with
//            defer_transports = smtp: N messages from smtp-source wait in its deferred queue;
//            then `postqueue -f` (which delivers deferred transports too); timed from the
//            postqueue call to the sink counting N more; CPU: the instance's process tree
//            (master, qmgr, smtp…: utime+stime, exited children included) before and after.
// Messages: about --size bytes each, one recipient. Prints per-round figures and the medians.
// Root is needed (Postfix's master, smtp-sink -u postfix).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadHarness, median, need, root, sleep, treeCpu } from '../smtp/lib.mjs';
import { parseOptions, startSmtpSink } from '../load/lib.mjs';

const USAGE = 'sudo node bench/hold-flush/run.mjs [--messages 2000] [--rounds 3] [--size 2048]';
const opts = parseOptions({ messages: 2000, rounds: 3, size: 2048 }, USAGE);
if (process.getuid?.() !== 0) {
  console.error(`needs root (Postfix master, smtp-sink -u postfix)\n${USAGE}`);
  process.exit(2);
}
const N = opts.messages;
const harness = await loadHarness();
const { writeHeld } = await import(pathToFileURL(join(root, 'packages/asmtpd/dist/relay/hold-queue.js')).href);
const BIN = join(root, 'packages/asmtpd/bin/asmtpd');
const smtpSource = need('smtp-source');
const sink = await startSmtpSink();

async function waitCount(target, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (sink.count() < target) {
    if (Date.now() > deadline) throw new Error(`sink at ${sink.count()}, expected ${target}`);
    await sleep(5);
  }
}

function body(i) {
  const head = `From: <bench@sender.test>\r\nTo: <rcpt@remote.test>\r\nSubject: hold-flush ${i}\r\nMessage-ID: <${i}.${Date.now()}@sender.test>\r\n\r\n`;
  const line = 'x'.repeat(76) + '\r\n';
  return head + line.repeat(Math.max(1, Math.ceil((opts.size - head.length) / line.length)));
}

async function roundAsmtpd() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-hold-'));
  chmodSync(dir, 0o755);
  const queue = join(dir, 'queue');
  const conf = join(dir, 'asmtpd.conf');
  writeFileSync(
    conf,
    [
      `DBDir ${dir}/db`,
      `HoldQueue ${queue}`,
      'Hostname mx.example.test',
      `RelayHost 127.0.0.1:${sink.port}`,
      'RelayConnections 20',
      'DNSResolver system',
      'DNSServer 127.0.0.1:9',
    ].join('\n') + '\n',
  );
  const spool = join(dir, 'spool');
  for (let i = 0; i < N; i++) {
    writeFileSync(spool, body(i));
    const w = await writeHeld(
      queue,
      {
        id: `B${i}`,
        from: 'bench@sender.test',
        to: ['rcpt@remote.test'],
        smtputf8: false,
        eightBit: false,
        headerPrefix: Buffer.alloc(0),
        spoolPath: spool,
        size: statSync(spool).size,
      },
      { hostname: 'mx.example.test' },
    );
    if (w.kind !== 'held') throw new Error('writeHeld failed');
  }
  const base = sink.count();
  const t0 = process.hrtime.bigint();
  const p = spawn('/usr/bin/time', ['-f', 'TIME %U %S', process.execPath, BIN, '--flush', '-f', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  await waitCount(base + N, 600_000);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => (p.exitCode !== null ? r() : p.once('exit', r)));
  const m = /TIME ([\d.]+) ([\d.]+)/.exec(err);
  const cpu = m ? Number(m[1]) + Number(m[2]) : NaN;
  if (!/^delivered \d+/.test(out)) throw new Error(`--flush: ${out} ${err}`);
  rmSync(dir, { recursive: true, force: true });
  return { wall, cpu };
}

async function roundPostfix() {
  const pf = await harness.startPostfix({
    mode: { relayTo: `127.0.0.1:${sink.port}` },
    mainCf: { defer_transports: 'smtp' },
  });
  try {
    const master = Number(
      (await import('node:fs')).readFileSync(join(pf.dir, 'spool', 'pid', 'master.pid'), 'utf8').trim(),
    );
    // N messages into its queue (held: the smtp transport is deferred)
    const src = spawnSync(
      smtpSource,
      [
        '-s',
        '10',
        '-m',
        String(N),
        '-l',
        String(opts.size),
        '-f',
        'bench@sender.test',
        '-t',
        'rcpt@remote.test',
        `127.0.0.1:${pf.port}`,
      ],
      { encoding: 'utf8', timeout: 600_000 },
    );
    if (src.status !== 0) throw new Error(`smtp-source: ${src.stderr}`);
    const deferred = join(pf.dir, 'spool', 'deferred');
    const count = () => {
      let n = 0;
      const walk = (d) => {
        for (const e of readdirSync(d, { withFileTypes: true }))
          if (e.isDirectory()) walk(join(d, e.name));
          else n++;
      };
      walk(deferred);
      return n;
    };
    const deadline = Date.now() + 600_000;
    while (count() < N) {
      if (Date.now() > deadline) throw new Error(`Postfix deferred ${count()} of ${N}`);
      await sleep(50);
    }
    if (sink.count() < 0) throw new Error('unreachable');
    const base = sink.count();
    const cpu0 = treeCpu(master);
    const t0 = process.hrtime.bigint();
    const f = spawnSync('/usr/sbin/postqueue', ['-c', join(pf.dir, 'etc'), '-f'], { encoding: 'utf8' });
    if (f.status !== 0) throw new Error(`postqueue -f: ${f.stderr}`);
    await waitCount(base + N, 600_000);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    // the smtp processes that exited are in master's children's times once reaped: wait a moment
    await sleep(300);
    const cpu = treeCpu(master) - cpu0;
    return { wall, cpu };
  } finally {
    await pf.stop();
  }
}

const results = { asmtpd: [], postfix: [] };
try {
  for (let r = 0; r < opts.rounds; r++) {
    const order = r % 2 === 0 ? ['asmtpd', 'postfix'] : ['postfix', 'asmtpd'];
    for (const who of order) {
      const x = who === 'asmtpd' ? await roundAsmtpd() : await roundPostfix();
      results[who].push(x);
      console.log(
        `round ${r + 1} ${who.padEnd(7)} ${N} messages in ${x.wall.toFixed(2)} s = ${(N / x.wall).toFixed(0)} msg/s, CPU ${x.cpu.toFixed(2)} s = ${((x.cpu / N) * 1000).toFixed(2)} ms/message`,
      );
    }
  }
  console.log(`\n${N} held messages of ~${opts.size} bytes flushed to smtp-sink, ${opts.rounds} rounds (medians):`);
  console.log('| | messages/s | wall s | CPU ms per message |');
  console.log('|---|---:|---:|---:|');
  for (const who of ['asmtpd', 'postfix']) {
    const xs = results[who];
    const wall = median(xs.map((x) => x.wall));
    const cpu = median(xs.map((x) => x.cpu));
    console.log(
      `| ${who === 'asmtpd' ? 'asmtpd --flush' : 'Postfix postqueue -f'} | ${(N / wall).toFixed(0)} | ${wall.toFixed(2)} | ${((cpu / N) * 1000).toFixed(2)} |`,
    );
  }
} finally {
  sink.stop();
}
