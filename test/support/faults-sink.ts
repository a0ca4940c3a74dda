/**
 * A downstream that can be killed (issue 7, faults): an SMTP server (smtp-server) in a CHILD
 * process that records every message it accepts in a file — appended and fsynced — BEFORE it
 * answers 250. SIGKILL it at any moment: whatever it answered 250 for is in the record.
 *
 * Public (parent side):
 *   startDurableSink({ port?, record?, jitterMs? }) -> DurableSink
 *     port: fixed port kept across restarts (default: a free one); record: the record file
 *     (default: a temp file); jitterMs: the child waits 0..jitterMs ms before writing the record and
 *     again before answering, so kills land in every phase (received / recorded / answered).
 *   DurableSink { port; record; pid; alive; kills; starts; kill() (SIGKILL, waits for the exit);
 *     restart(); entries() -> RecordEntry[]; close() }
 *   RecordEntry { token, from, to[], bodySha256, size } — token: the message's `X-Fault-Token:`
 *     field; bodySha256: SHA-256 of everything after the first empty line (asmtpd adds fields at
 *     the top only, so this is the client's body byte for byte).
 *   bodySha256(message) -> hex (the same hash, for the client's side)
 *
 * Child side: `node faults-sink.js --port N --record FILE [--jitter MS]` prints `ready PORT` once it
 * listens. A partial last line in the record (a kill in the middle of a write) is ignored by
 * entries(): that message was never answered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

export interface RecordEntry {
  token: string;
  from: string;
  to: string[];
  bodySha256: string;
  size: number;
}

export interface DurableSink {
  readonly port: number;
  readonly record: string;
  readonly pid: number | undefined;
  readonly alive: boolean;
  /** SIGKILLs so far */
  readonly kills: number;
  /** processes started so far */
  readonly starts: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  entries(): RecordEntry[];
  close(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

export function bodySha256(message: Buffer | string): string {
  const b = typeof message === 'string' ? Buffer.from(message, 'latin1') : message;
  const sep = b.indexOf('\r\n\r\n');
  return createHash('sha256')
    .update(sep < 0 ? Buffer.alloc(0) : b.subarray(sep + 4))
    .digest('hex');
}

export async function startDurableSink(
  o: { port?: number; record?: string; jitterMs?: number } = {},
): Promise<DurableSink> {
  const port = o.port ?? (await freePort());
  const dir = o.record ? null : mkdtempSync(join(tmpdir(), 'asmtpd-durable-sink-'));
  const record = o.record ?? join(dir!, 'record.jsonl');
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let kills = 0;
  let starts = 0;
  let closed = false;

  const start = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const c = spawn(
        process.execPath,
        [SELF, '--port', String(port), '--record', record, '--jitter', String(o.jitterMs ?? 0)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      starts++;
      const exit = new Promise<void>((r) => c.once('exit', () => r()));
      const ready = await new Promise<boolean>((resolve) => {
        let out = '';
        c.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('ready ')) resolve(true);
        });
        c.once('exit', () => resolve(false));
      });
      if (ready) {
        child = c;
        exited = exit;
        return;
      }
      // EADDRINUSE right after a kill is possible in theory (SO_REUSEADDR makes it rare): retry
      if (attempt >= 50) throw new Error(`durable sink: could not listen on port ${port}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await start();
  const kill = async (): Promise<void> => {
    if (!child) return;
    child.kill('SIGKILL');
    kills++;
    await exited;
    child = null;
  };

  return {
    port,
    record,
    get pid() {
      return child?.pid;
    },
    get alive() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    get kills() {
      return kills;
    },
    get starts() {
      return starts;
    },
    kill,
    async restart() {
      if (closed) return;
      if (child) await kill();
      await start();
    },
    entries() {
      if (!existsSync(record)) return [];
      const out: RecordEntry[] = [];
      for (const line of readFileSync(record, 'utf8').split('\n')) {
        if (line === '') continue;
        try {
          out.push(JSON.parse(line) as RecordEntry);
        } catch {
          /* a line cut by a kill: never answered */
        }
      }
      return out;
    },
    async close() {
      closed = true;
      if (child) {
        child.kill('SIGKILL');
        await exited;
        child = null;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The child: listen, record with fsync, then answer. */
async function childMain(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const port = Number(arg('--port'));
  const recordPath = arg('--record')!;
  const jitter = Number(arg('--jitter') ?? 0);
  const { SMTPServer } = await import('smtp-server');
  const fd = openSync(recordPath, 'a', 0o600);
  const pause = (): Promise<void> =>
    jitter > 0 ? new Promise((r) => setTimeout(r, Math.random() * jitter)) : Promise.resolve();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 64 * 1024 * 1024,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        const head = data.subarray(0, Math.max(0, data.indexOf('\r\n\r\n'))).toString('latin1');
        const token = /^X-Fault-Token: *(\S+)/im.exec(head)?.[1] ?? '';
        const entry: RecordEntry = {
          token,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          bodySha256: bodySha256(data),
          size: data.length,
        };
        void (async () => {
          await pause();
          writeSync(fd, JSON.stringify(entry) + '\n');
          fsyncSync(fd);
          await pause();
          cb(null, `Ok: queued as ${token || 'SINK'}`);
        })();
      });
    },
  });
  server.on('error', (err: Error) => {
    process.stderr.write(`faults-sink: ${err.message}\n`);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') process.exit(3);
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`ready ${port}\n`));
  process.on('SIGTERM', () => {
    closeSync(fd);
    process.exit(0);
  });
}

if (process.argv[1] === SELF) void childMain(process.argv.slice(2));
