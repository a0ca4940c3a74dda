/**
 * relay/message-body — the bytes a relay sends: headerPrefix, then the spool file, streamed.
 *
 * Public functions:
 *   messageChunks(msg)         async iterable of Buffers: headerPrefix then the spool file (from
 *                              spoolOffset: a held file's message after its envelope block) in
 *                              64 KiB reads (never the whole file in memory)
 *   messageNeedsSmtpUtf8(msg)  true when the client used SMTPUTF8 and the envelope, the added headers
 *                              or the message's own header section contain a non-ASCII byte (RFC 6531
 *                              §3.4: such a message must not be passed to a server without SMTPUTF8)
 *   outgoingSizeBytes(msg)     headerPrefix + spool, for the SIZE parameter (RFC 1870)
 *
 * Notes: the spool ends with CRLF (front end guarantee, see types.ts); nothing is added here.
 */
import { createReadStream } from 'node:fs';
import type { OutgoingMessage } from './types.js';

const READ_CHUNK_BYTES = 64 * 1024;

export async function* messageChunks(msg: OutgoingMessage): AsyncGenerator<Buffer> {
  if (msg.headerPrefix.length > 0) yield msg.headerPrefix;
  const spool = createReadStream(msg.spoolPath, { highWaterMark: READ_CHUNK_BYTES, start: msg.spoolOffset ?? 0 });
  try {
    for await (const chunk of spool) yield chunk as Buffer;
  } finally {
    spool.destroy();
  }
}

export function outgoingSizeBytes(msg: OutgoingMessage): number {
  return msg.headerPrefix.length + msg.size;
}

function hasNonAscii(bytes: Buffer | string): boolean {
  // eslint-disable-next-line no-control-regex
  return typeof bytes === 'string' ? /[^\x00-\x7f]/.test(bytes) : bytes.some((b) => b > 0x7f);
}

export async function messageNeedsSmtpUtf8(msg: OutgoingMessage): Promise<boolean> {
  if (!msg.smtputf8) return false;
  if (hasNonAscii(msg.from) || msg.to.some(hasNonAscii) || hasNonAscii(msg.headerPrefix)) return true;
  return spoolHeaderHasNonAscii(msg.spoolPath, msg.spoolOffset ?? 0);
}

/** Scan the spool's header section (up to the first empty line) for a byte > 0x7f. */
async function spoolHeaderHasNonAscii(spoolPath: string, start: number): Promise<boolean> {
  const spool = createReadStream(spoolPath, { highWaterMark: READ_CHUNK_BYTES, start });
  // the last three bytes of the previous chunk, so a CRLFCRLF split across chunks is seen
  let carry = Buffer.alloc(0);
  let first = true;
  try {
    for await (const chunk of spool) {
      const window = Buffer.concat([carry, chunk as Buffer]);
      if (first && window.subarray(0, 2).toString('latin1') === '\r\n') return false; // no header section
      const blank = window.indexOf('\r\n\r\n');
      const header = blank >= 0 ? window.subarray(0, blank) : window;
      if (hasNonAscii(header)) return true;
      if (blank >= 0) return false;
      first = false;
      carry = window.subarray(Math.max(0, window.length - 3));
    }
    return false;
  } finally {
    spool.destroy();
  }
}
