/**
 * relay/hold-queue — the hold queue: a Maildir of accepted messages, each with its envelope
 * (spec seeds.md §C; HoldQueue directive).
 *
 * Public functions:
 *   writeHeld(dir, msg, { hostname, reason? })  → { kind: 'held', path } | { kind: 'failed', reply, reason }
 *   readHeld(path)                               → HeldEnvelope (from, to, queue id, queued date, mail
 *                                                  parameters, held reason, headerOffset, sizeBytes)
 *   listHeld(dir)                                → HeldMessage[] for the files in new/ and cur/, oldest first
 *   countHeld(dir)                               → how many entries new/ and cur/ hold (the metrics' figure:
 *                                                  names only, no file is opened)
 *   maildirName(hostname)                        → "time.M<usec>P<pid>Q<n>.<host>" (unique in this process)
 *
 * File format (one file per message; the file is itself a valid RFC 5322 message):
 *   X-Asmtpd-Envelope-From: <sender>        "<>" for the null sender
 *   X-Asmtpd-Envelope-To: <recipient>       one line per recipient, in order
 *   X-Asmtpd-Queue-Id: <id>                 our queue id (as in the Received header)
 *   X-Asmtpd-Queued: Thu, 21 Nov 2024 05:54:00 +0000
 *   X-Asmtpd-Mail-Params: SMTPUTF8 BODY=8BITMIME    only the parameters the client used; line absent if none
 *   X-Asmtpd-Held-Reason: 451 4.4.1 …       only when held because the downstream deferred
 *   X-Asmtpd-Envelope-End: ok               always last: ends the envelope block
 *   <headerPrefix><the spooled message>     from headerOffset to the end, byte for byte
 * The block is parsed up to X-Asmtpd-Envelope-End only, so X-Asmtpd-* lines a sender put in the
 * message itself are never read as envelope. A flush sends bytes headerOffset…end.
 *
 * Durability (the 250 that follows is a promise): the file is created in tmp/ (O_EXCL, 0600),
 * written, fsynced, closed, renamed into new/, and new/ is fsynced; only then is the message
 * `held`. Any failure unlinks what was written (tmp/ or new/), so new/ never holds a partial or
 * unacknowledged file. ENOSPC / EDQUOT → 452 4.3.1; other errors → 451 4.3.0. Directories are
 * created with mode 0700.
 */
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { type Reply } from '../reply/reply.js';
import { messageChunks } from './message-body.js';
import { insufficientStorage, localFailure, replyForLog } from './relay-replies.js';
import type { OutgoingMessage } from './types.js';
import { REPLIES } from '../reply/catalogue.js';

const PREFIX = 'X-Asmtpd-';
const END_LINE = 'X-Asmtpd-Envelope-End: ok';
const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;
const SUBDIRS = ['tmp', 'new', 'cur'] as const;

export interface HeldEnvelope {
  from: string;
  to: string[];
  queueId: string;
  /** null when the date line is missing or unreadable */
  queuedAt: Date | null;
  smtputf8: boolean;
  eightBit: boolean;
  /** the downstream reply that made us hold it, if any */
  heldReason?: string;
  /** byte offset where the message (headerPrefix + spool) starts */
  headerOffset: number;
  sizeBytes: number;
}

export interface HeldMessage extends HeldEnvelope {
  path: string;
  /** the Maildir file name (unique id of the held message) */
  name: string;
}

export type WriteHeldResult = { kind: 'held'; path: string } | { kind: 'failed'; reply: Reply; reason: string };

let deliveryCounter = 0;

export function maildirName(hostname: string = osHostname()): string {
  const nowUs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  const seconds = nowUs / 1_000_000n;
  const micros = nowUs % 1_000_000n;
  const host = hostname.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${seconds}.M${String(micros).padStart(6, '0')}P${process.pid}Q${++deliveryCounter}.${host}`;
}

function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

function envelopeBlock(msg: OutgoingMessage, reason: Reply | undefined, now: Date): Buffer {
  const lines = [`${PREFIX}Envelope-From: <${msg.from}>`, ...msg.to.map((to) => `${PREFIX}Envelope-To: <${to}>`)];
  lines.push(`${PREFIX}Queue-Id: ${msg.id}`, `${PREFIX}Queued: ${rfc5322Date(now)}`);
  const params = [msg.smtputf8 ? 'SMTPUTF8' : '', msg.eightBit ? 'BODY=8BITMIME' : ''].filter(Boolean);
  if (params.length > 0) lines.push(`${PREFIX}Mail-Params: ${params.join(' ')}`);
  if (reason) lines.push(`${PREFIX}Held-Reason: ${replyForLog(reason).replace(/[\r\n]/g, ' ')}`);
  lines.push(END_LINE);
  return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function failureFor(err: unknown): { reply: Reply; reason: string } {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return { reply: insufficientStorage(`hold queue: ${code}`), reason: code };
  return { reply: localFailure(`hold queue write failed: ${code}`), reason: code };
}

export async function writeHeld(
  dir: string,
  msg: OutgoingMessage,
  opts: { hostname: string; reason?: Reply; now?: Date },
): Promise<WriteHeldResult> {
  const unsafe = [msg.from, ...msg.to, msg.id].find((s) => /[\r\n]/.test(s));
  if (unsafe !== undefined) return { kind: 'failed', reply: REPLIES.heldEnvelopeLineBreak(), reason: 'EINVAL' };
  const name = maildirName(opts.hostname);
  const tmpPath = join(dir, 'tmp', name);
  const newPath = join(dir, 'new', name);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    for (const sub of SUBDIRS) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    fh = await open(tmpPath, 'wx', 0o600);
    await writeAll(fh, envelopeBlock(msg, opts.reason, opts.now ?? new Date()));
    for await (const chunk of messageChunks(msg)) await writeAll(fh, chunk);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmpPath, newPath);
    renamed = true;
    const newDir = await open(join(dir, 'new'), 'r');
    try {
      await newDir.sync();
    } finally {
      await newDir.close();
    }
    return { kind: 'held', path: newPath };
  } catch (err) {
    if (fh) await fh.close().catch(() => {});
    await unlink(renamed ? newPath : tmpPath).catch(() => {});
    return { kind: 'failed', ...failureFor(err) };
  }
}

function angleAddress(value: string): string {
  const start = value.indexOf('<');
  const end = value.lastIndexOf('>');
  return start >= 0 && end > start ? value.slice(start + 1, end) : value.trim();
}

/** Read the envelope block of a held file. Throws when the file has no complete block. */
export async function readHeld(path: string): Promise<HeldEnvelope> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    let text = Buffer.alloc(0);
    let position = 0;
    const chunk = Buffer.alloc(64 * 1024);
    for (;;) {
      const endAt = text.indexOf(`\r\n${END_LINE}\r\n`);
      if (endAt >= 0) {
        const blockEnd = endAt + END_LINE.length + 4;
        return parseEnvelope(text.subarray(0, blockEnd).toString('utf8'), blockEnd, size, path);
      }
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0 || position > MAX_ENVELOPE_BYTES)
        throw new Error(`${path}: no ${END_LINE} line: not a held message`);
      position += bytesRead;
      text = Buffer.concat([text, chunk.subarray(0, bytesRead)]);
    }
  } finally {
    await fh.close();
  }
}

function parseEnvelope(block: string, headerOffset: number, sizeBytes: number, path: string): HeldEnvelope {
  const env: HeldEnvelope = {
    from: '',
    to: [],
    queueId: '',
    queuedAt: null,
    smtputf8: false,
    eightBit: false,
    headerOffset,
    sizeBytes,
  };
  let sawFrom = false;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (!line.startsWith(PREFIX) || colon < 0) continue;
    const field = line.slice(PREFIX.length, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (field === 'envelope-from') {
      env.from = angleAddress(value);
      sawFrom = true;
    } else if (field === 'envelope-to') env.to.push(angleAddress(value));
    else if (field === 'queue-id') env.queueId = value;
    else if (field === 'queued') {
      const d = new Date(value);
      env.queuedAt = Number.isNaN(d.getTime()) ? null : d;
    } else if (field === 'mail-params') {
      const params = value.toUpperCase().split(/\s+/);
      env.smtputf8 = params.includes('SMTPUTF8');
      env.eightBit = params.includes('BODY=8BITMIME');
    } else if (field === 'held-reason') env.heldReason = value;
  }
  if (!sawFrom || env.to.length === 0) throw new Error(`${path}: envelope block without sender or recipients`);
  return env;
}

/** Held messages in new/ and cur/ (files that do not parse are skipped), oldest first. */
export async function countHeld(dir: string): Promise<number> {
  let n = 0;
  for (const sub of ['new', 'cur']) {
    try {
      n += (await readdir(join(dir, sub))).length;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return n;
}

export async function listHeld(dir: string): Promise<HeldMessage[]> {
  const held: HeldMessage[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await readdir(join(dir, sub));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const name of names) {
      const path = join(dir, sub, name);
      try {
        if (!(await stat(path)).isFile()) continue;
        held.push({ ...(await readHeld(path)), path, name });
      } catch {
        // not a held message (or it vanished during a flush): not listed
      }
    }
  }
  return held.sort(
    (a, b) => (a.queuedAt?.getTime() ?? 0) - (b.queuedAt?.getTime() ?? 0) || a.name.localeCompare(b.name),
  );
}
