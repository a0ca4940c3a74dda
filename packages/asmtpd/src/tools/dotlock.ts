/**
 * dotlock.ts — `dotlock [-L] [--timeout=S] MBOX COMMAND [ARG…]` (docs/man/dotlock.1.md): run a
 * command while holding an mbox file's lock, as deliver(1) takes it (mailbox-lock.ts: flock, then
 * MBOX.lock; a lock file idle for 30 s is stale; ours is refreshed every 15 s while the command
 * runs).
 *
 *   main(argv, io) -> the command's exit status (128 + N when killed by signal N); 64 bad usage;
 *     75 the lock could not be had within --timeout (default 60 s) or at all; 126 the command
 *     could not be run, 127 not found
 *   -L (--noflock): the dot-lock alone (for a command that takes the flock itself)
 *   The command gets dotlock's stdin, stdout and stderr, not the mbox's descriptor (so it holds
 *   no lock of its own: a command that locks the same mbox, such as deliver to it, would wait
 *   for us). SIGTERM, SIGINT and SIGHUP to dotlock are passed on to the command; the lock is
 *   released when the command has ended.
 */
import { spawn } from 'node:child_process';
import { lockMailbox } from './mailbox-lock.js';
import { writeOut, type ToolIo, shellStatus } from './tool-io.js';

export const DOTLOCK_USAGE = `usage: dotlock [-L] [--timeout=SECONDS] MBOX COMMAND [ARG...]
  Run COMMAND while holding the lock of the mbox file MBOX: flock on MBOX, then MBOX.lock.
  -L, --noflock      the lock file alone (no flock)
  --timeout=SECONDS  how long to wait for the lock (default 60)
Exit: the command's status; 64 bad usage, 75 the lock could not be had, 126/127 COMMAND could not be run.`;

type Parsed =
  | { help: true }
  | { flock: boolean; timeoutMs: number; mbox: string; command: string[] }
  | { error: string };

function parseArgv(argv: readonly string[]): Parsed {
  let flock = true;
  let timeoutMs = 60_000;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '-L' || a === '--noflock') flock = false;
    else if (a.startsWith('--timeout=')) {
      const v = a.slice('--timeout='.length);
      if (!/^\d{1,6}(\.\d+)?$/.test(v)) return { error: `bad --timeout "${v}"` };
      timeoutMs = Math.round(Number(v) * 1000);
    } else if (a === '-P' || a === '--fcntl')
      return { error: `${a}: fcntl locking is not supported (flock and MBOX.lock are)` };
    else if (a.startsWith('-') && a.length > 1) return { error: `unknown option ${a}` };
    else break;
  }
  const [mbox, ...command] = argv.slice(i);
  if (mbox === undefined || mbox === '') return { error: 'missing MBOX' };
  if (command.length === 0 || command[0] === '') return { error: 'missing COMMAND' };
  return { flock, timeoutMs, mbox, command };
}

/** Run argv with our stdio; resolves to its exit status as a shell reports it. */
function runCommand(argv: string[], io: ToolIo): Promise<{ status: number } | { spawnError: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: io.env as NodeJS.ProcessEnv });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const handlers = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = (r: { status: number } | { spawnError: NodeJS.ErrnoException }) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(r);
    };
    child.on('error', (err) => done({ spawnError: err }));
    child.on('exit', (code, signal) => done({ status: shellStatus(code, signal) }));
  });
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const o = parseArgv(argv);
  if ('help' in o) {
    await writeOut(io.stdout, DOTLOCK_USAGE + '\n');
    return 0;
  }
  if ('error' in o) {
    await writeOut(io.stderr, `dotlock: ${o.error}\n${DOTLOCK_USAGE}\n`);
    return 64;
  }
  let lock;
  try {
    lock = await lockMailbox(o.mbox, { open: 'read', flock: o.flock, timeoutMs: o.timeoutMs });
  } catch (err) {
    await writeOut(io.stderr, `dotlock: ${o.mbox}: ${(err as Error).message}\n`);
    return 75;
  }
  try {
    const r = await runCommand(o.command, io);
    if ('status' in r) return r.status;
    await writeOut(io.stderr, `dotlock: ${o.command[0]}: ${r.spawnError.message}\n`);
    return r.spawnError.code === 'ENOENT' ? 127 : 126;
  } finally {
    lock.release();
  }
}
