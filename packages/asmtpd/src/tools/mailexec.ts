/**
 * mailexec.ts — `mailexec [-nvFR] MAILBOX COMMAND [ARG…]` (docs/man/mailexec.1.md): run a command
 * once per message of an mbox file or a Maildir, the message on its stdin.
 *
 *   main(argv, io) -> 0 every command exited 0; 1 some did not (mailexec went on with the rest);
 *     2 bad usage, an unreadable mailbox, or a command that cannot be run (it stops there)
 *
 *   A Maildir (a directory): the files of new/ and cur/ (-n: new/ only), in the order of their
 *   names (delivery order); a file gone meanwhile (a reader moved it) is skipped. Each message gets
 *   an envelope line synthesised from its Return-Path field and the file's mtime (MAILER-DAEMON
 *   when it has none: then no Return-Path is added either, the sender being unknown).
 *   An mbox file: read up to the size it had when mailexec took a shared flock on it (so no
 *   half-appended message is read; the lock is not held while commands run, so a command may
 *   deliver to the same file); split as mbox-format.ts MboxSplitter does (">From " unquoted);
 *   a message without a Return-Path field gets one from its envelope line.
 *   -F: no envelope line; -R: no Return-Path field at the top (none added, those there removed);
 *   -v: the file name (Maildir) or Message-ID (mbox) of each message on stderr.
 *   The command runs without a shell (argv as given, found on PATH), with mailexec's environment,
 *   stdout and stderr; a command that stops reading early is not an error.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { flockDescriptor } from './mailbox-lock.js';
import {
  envelopeLine,
  envelopeSender,
  hasField,
  MboxSplitter,
  returnPathField,
  returnPathOf,
  splitEnvelope,
  stripLeadingFields,
  type MboxMessage,
} from './mbox-format.js';
import { writeOut, type ToolIo, shellStatus } from './tool-io.js';

export const MAILEXEC_USAGE = `usage: mailexec [-nvFR] MAILBOX COMMAND [ARG...]
  Run COMMAND once for every message of MAILBOX (an mbox file or a Maildir directory),
  with the message on its standard input.
  -n  Maildir: only the messages in new/
  -v  say each message's file name (Maildir) or Message-ID (mbox) on standard error
  -F  no "From " envelope line before each message
  -R  no Return-Path field at the top of each message
Exit: 0 every command exited 0, 1 some did not, 2 bad usage or an unreadable mailbox.`;

interface Options {
  newOnly: boolean;
  verbose: boolean;
  noEnvelope: boolean;
  noReturnPath: boolean;
  mailbox: string;
  command: string[];
}

type Parsed = { help: true } | Options | { error: string };

function parseArgv(argv: readonly string[]): Parsed {
  const flags = { n: false, v: false, F: false, R: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (!/^-[nvFR]+$/.test(a)) {
      if (a.startsWith('-') && a.length > 1) return { error: `unknown option ${a}` };
      break;
    }
    for (const f of a.slice(1)) flags[f as keyof typeof flags] = true;
  }
  const [mailbox, ...command] = argv.slice(i);
  if (mailbox === undefined || mailbox === '') return { error: 'missing MAILBOX' };
  if (command.length === 0 || command[0] === '') return { error: 'missing COMMAND' };
  return { newOnly: flags.n, verbose: flags.v, noEnvelope: flags.F, noReturnPath: flags.R, mailbox, command };
}

class SpawnFailure extends Error {}

/** Run the command with input on its stdin; its exit status as a shell reports it. */
function runOnce(argv: string[], input: Buffer, io: ToolIo): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'inherit', 'inherit'],
      env: io.env as NodeJS.ProcessEnv,
    });
    child.stdin!.on('error', () => {}); // EPIPE: the command did not want the rest
    child.stdin!.end(input);
    child.on('error', (err) => reject(new SpawnFailure(`${argv[0]}: ${err.message}`)));
    child.on('close', (code, signal) => resolve(shellStatus(code, signal)));
  });
}

/** The message as the command gets it (sender: for a Return-Path field it lacks; null: unknown). */
function present(envelope: Buffer, content: Buffer, sender: string | null, o: Options): Buffer {
  let body = o.noReturnPath ? stripLeadingFields(content, 'Return-Path') : content;
  if (!o.noReturnPath && sender !== null && !hasField(body, 'Return-Path'))
    body = Buffer.concat([returnPathField(sender), body]);
  return o.noEnvelope ? body : Buffer.concat([envelope, body]);
}

function maildirFiles(dir: string, newOnly: boolean): string[] {
  const subs = newOnly ? ['new'] : ['new', 'cur'];
  const files = subs.flatMap((sub) =>
    readdirSync(join(dir, sub))
      .filter((n) => !n.startsWith('.'))
      .map((n) => ({ ...deliveryTime(n), key: n.split(':')[0]!, path: join(dir, sub, n) })),
  );
  return files
    .sort((a, b) => a.seconds - b.seconds || a.usec - b.usec || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((f) => f.path);
}

/** SECONDS.M<usec>… of a Maildir name (deliver's, Dovecot's, Postfix's): the order of delivery. */
function deliveryTime(name: string): { seconds: number; usec: number } {
  const m = /^(\d+)\.(?:[^.]*?M(\d+))?/.exec(name);
  return { seconds: m ? Number(m[1]) : Infinity, usec: m?.[2] ? Number(m[2]) : 0 };
}

async function eachMaildirMessage(o: Options, io: ToolIo, each: (m: Buffer) => Promise<void>): Promise<void> {
  for (const path of maildirFiles(o.mailbox, o.newOnly)) {
    let raw: Buffer;
    let mtime: Date;
    try {
      raw = readFileSync(path);
      mtime = statSync(path).mtime;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // moved or deleted meanwhile
      throw err;
    }
    if (o.verbose) await writeOut(io.stderr, `${path}\n`);
    const { envelope: own, rest } = splitEnvelope(raw);
    const sender = own === null ? returnPathOf(rest) : envelopeSender(own);
    await each(present(own ?? envelopeLine(sender, mtime), rest, sender, o));
  }
}

async function eachMboxMessage(o: Options, io: ToolIo, each: (m: Buffer) => Promise<void>): Promise<void> {
  // a shared flock for the size only: a second descriptor (the same file) reads, this one goes
  const locked = openSync(o.mailbox, 'r');
  let reader: number;
  let size: number;
  try {
    await flockDescriptor(locked, 'shared', 60_000);
    size = fstatSync(locked).size;
    reader = openSync(`/proc/self/fd/${locked}`, 'r');
  } finally {
    closeSync(locked);
  }
  try {
    const splitter = new MboxSplitter();
    const handle = async (m: MboxMessage) => {
      if (o.verbose) {
        const id = /(?:^|\n)Message-ID:[ \t]*(\S*)/i.exec(m.content.toString('latin1', 0, 65536))?.[1];
        await writeOut(io.stderr, `${id ?? '(no Message-ID)'}\n`);
      }
      await each(present(m.envelope, m.content, envelopeSender(m.envelope), o));
    };
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let at = 0; at < size; ) {
      const n = readSync(reader, buf, 0, Math.min(buf.length, size - at), at);
      if (n === 0) break;
      at += n;
      for (const m of splitter.push(buf.subarray(0, n))) await handle(m);
    }
    for (const m of splitter.end()) await handle(m);
  } finally {
    closeSync(reader);
  }
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const o = parseArgv(argv);
  if ('help' in o) {
    await writeOut(io.stdout, MAILEXEC_USAGE + '\n');
    return 0;
  }
  if ('error' in o) {
    await writeOut(io.stderr, `mailexec: ${o.error}\n${MAILEXEC_USAGE}\n`);
    return 2;
  }
  let failures = 0;
  const each = async (message: Buffer) => {
    if ((await runOnce(o.command, message, io)) !== 0) failures++;
  };
  try {
    const isDir = statSync(o.mailbox).isDirectory();
    await (isDir ? eachMaildirMessage(o, io, each) : eachMboxMessage(o, io, each));
  } catch (err) {
    await writeOut(
      io.stderr,
      `mailexec: ${err instanceof SpawnFailure ? '' : `${o.mailbox}: `}${(err as Error).message}\n`,
    );
    return 2;
  }
  return failures === 0 ? 0 : 1;
}
