/**
 * deliver.ts — `deliver [--umask[=M]] [-f SENDER] [--norewind] [--timeout=S] DEST…`
 * (docs/man/deliver.1.md): the message on stdin into Maildirs, mbox files and stdout.
 *
 *   main(argv, io) -> 0 delivered to every DEST, 64 bad usage, 75 some DEST failed (the others
 *     got the message; the error is said on stderr as "deliver: DEST: …")
 *
 *   DEST ending in "/"  a Maildir (maildir.ts: created when missing, tmp → new, fsynced)
 *   DEST "-"            standard output: the message with a Return-Path field
 *   any other DEST      an mbox file, created when missing (its directories too), under its lock (mailbox-lock.ts:
 *       flock + MBOX.lock, --timeout, default 60 s): the envelope line "From SENDER DATE", a
 *       Return-Path field, the message with /^>*From / lines quoted, a newline if the message
 *       lacks a final one, and an empty line; fsynced; on a failure the file is cut back to its
 *       old length
 *   The sender: -f, else the environment's SENDER (as a script has it), else the message's own
 *   envelope line. A message that starts with an envelope line keeps it in an mbox (and loses it
 *   elsewhere); the Return-Path field is added only when the sender is known and the header has
 *   none. Files and directories are created with umask 077 unless --umask says otherwise
 *   (--umask alone: the inherited one).
 *   stdin: read whole; a regular file from offset 0 (--norewind: from where it stands).
 */
import { fstatSync, fsyncSync, ftruncateSync, mkdirSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { deliverToMaildir } from './maildir.js';
import { LockError, lockMailbox } from './mailbox-lock.js';
import {
  envelopeLine,
  envelopeSender,
  hasField,
  quoteFromLines,
  returnPathField,
  splitEnvelope,
} from './mbox-format.js';
import { readInput } from './tool-input.js';
import { writeOut, type ToolIo } from './tool-io.js';

export const DELIVER_USAGE = `usage: deliver [--umask[=MODE]] [-f SENDER] [--norewind] [--timeout=SECONDS] DEST...
  Deliver the message on standard input to each DEST:
    DIR/    a Maildir (created when missing)
    FILE    an mbox file (locked with flock and FILE.lock; created when missing)
    -       standard output, with a Return-Path field
  -f SENDER, --sender=SENDER   the envelope sender (default: $SENDER)
  --umask[=MODE]     umask for what deliver creates (default 077; alone: the inherited one)
  --norewind         read standard input from where it stands, not from its start
  --timeout=SECONDS  how long to wait for an mbox's locks (default 60)
Exit: 0 delivered, 64 bad usage, 75 a destination failed (temporary: try again).`;

export const EX_USAGE = 64;
export const EX_TEMPFAIL = 75;

interface Options {
  umask: number | null;
  sender: string | null;
  rewind: boolean;
  timeoutMs: number;
  dests: string[];
}

type Parsed = { help: true } | Options | { error: string };

function parseArgv(argv: readonly string[]): Parsed {
  const o: Options = { umask: 0o077, sender: null, rewind: true, timeoutMs: 60_000, dests: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      o.dests.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '--umask') o.umask = null;
    else if (a.startsWith('--umask=')) {
      const v = a.slice('--umask='.length);
      if (!/^[0-7]{1,4}$/.test(v) || parseInt(v, 8) > 0o777) return { error: `bad --umask "${v}" (octal, e.g. 077)` };
      o.umask = parseInt(v, 8);
    } else if (a === '-f' || a === '--sender') {
      const v = argv[++i];
      if (v === undefined) return { error: `${a} needs a value` };
      o.sender = v;
    } else if (a.startsWith('--sender=')) o.sender = a.slice('--sender='.length);
    else if (a === '--norewind') o.rewind = false;
    else if (a === '--copy')
      continue; // Mail Avenger's: the message is always read whole first
    else if (a.startsWith('--timeout=')) {
      const v = a.slice('--timeout='.length);
      if (!/^\d{1,6}(\.\d+)?$/.test(v)) return { error: `bad --timeout "${v}"` };
      o.timeoutMs = Math.round(Number(v) * 1000);
    } else if (a === '-P' || a === '--fcntl')
      return { error: `${a}: fcntl locking is not supported (mbox files are locked with flock and FILE.lock)` };
    else if (a.startsWith('-') && a !== '-') return { error: `unknown option ${a}` };
    else o.dests.push(a);
  }
  if (o.dests.length === 0) return { error: 'missing DEST' };
  if (o.dests.some((d) => d === '')) return { error: 'empty DEST' };
  return o;
}

/** What an mbox needs before our envelope line: it must end with an empty line. */
function separatorFor(fd: number): Buffer {
  const size = fstatSync(fd).size;
  if (size === 0) return Buffer.alloc(0);
  const tail = Buffer.alloc(2);
  const n = readSync(fd, tail, 0, Math.min(2, size), size - Math.min(2, size));
  const last = tail.subarray(0, n);
  if (last.at(-1) !== 0x0a) return Buffer.from('\n\n');
  if (size >= 2 && last[0] !== 0x0a) return Buffer.from('\n');
  return Buffer.alloc(0);
}

function writeAll(fd: number, parts: readonly Buffer[]): void {
  for (const part of parts)
    for (let done = 0; done < part.length; ) done += writeSync(fd, part, done, part.length - done);
}

async function appendToMbox(path: string, parts: (sep: Buffer) => Buffer[], timeoutMs: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o777 });
  const lock = await lockMailbox(path, { open: 'append', flock: true, timeoutMs });
  const fd = lock.fd!;
  try {
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
    const size = fstatSync(fd).size;
    try {
      writeAll(fd, parts(separatorFor(fd)));
      fsyncSync(fd);
    } catch (err) {
      try {
        ftruncateSync(fd, size);
      } catch {
        /* said below: the write's error is the news */
      }
      throw err;
    }
  } finally {
    lock.release();
  }
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const o = parseArgv(argv);
  if ('help' in o) {
    await writeOut(io.stdout, DELIVER_USAGE + '\n');
    return 0;
  }
  if ('error' in o) {
    await writeOut(io.stderr, `deliver: ${o.error}\n${DELIVER_USAGE}\n`);
    return EX_USAGE;
  }
  const oldUmask = o.umask === null ? null : process.umask(o.umask);
  try {
    return await deliverAll(o, io);
  } finally {
    if (oldUmask !== null) process.umask(oldUmask);
  }
}

async function deliverAll(o: Options, io: ToolIo): Promise<number> {
  let message: Buffer;
  try {
    message = await readInput(io, { rewind: o.rewind });
  } catch (err) {
    await writeOut(io.stderr, `deliver: cannot read the message: ${(err as Error).message}\n`);
    return EX_TEMPFAIL;
  }
  const { envelope, rest } = splitEnvelope(message);
  const sender = o.sender ?? io.env.SENDER ?? (envelope === null ? null : envelopeSender(envelope));
  const returnPath = sender !== null && !hasField(rest, 'Return-Path') ? returnPathField(sender) : Buffer.alloc(0);
  const ending = rest.length > 0 && rest.at(-1) !== 0x0a ? Buffer.from('\n') : Buffer.alloc(0);
  let failed = false;
  for (const dest of o.dests) {
    try {
      if (dest === '-') await writeOut(io.stdout, Buffer.concat([returnPath, rest]));
      else if (dest.endsWith('/')) deliverToMaildir(dest, [returnPath, rest]);
      else {
        const quoted = quoteFromLines(rest);
        const from = envelope ?? envelopeLine(sender, new Date());
        await appendToMbox(dest, (sep) => [sep, from, returnPath, quoted, ending, Buffer.from('\n')], o.timeoutMs);
      }
    } catch (err) {
      failed = true;
      const why = err instanceof LockError ? err.message : (err as Error).message;
      await writeOut(io.stderr, `deliver: ${dest}: ${why}\n`);
    }
  }
  return failed ? EX_TEMPFAIL : 0;
}
