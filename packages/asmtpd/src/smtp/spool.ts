/**
 * spool.ts — receive the DATA stream into a file under DBDir, checking every byte as it streams.
 *
 *   spoolMessage(stream, opts) -> Promise<SpoolResult>
 *
 * The stream comes from smtp-server already dot-unstuffed, ending at the first CRLF.CRLF (RFC 5321
 * §4.1.1.4). That parser passes bare CR and bare LF through, so this is where SMTP smuggling dies:
 * with `BareLineEndings reject` (default) any CR not followed by LF or LF not preceded by CR makes
 * the whole message `554 5.6.0` — so `\n.\n`, `\r.\r`, `\r\n.\r` … can never end a message and start
 * another. With `normalize`, each bare CR or LF becomes CRLF. NUL bytes are refused (`554 5.6.0`).
 * The size is enforced while streaming: past maxBytes nothing more is written and `onOversize`
 * fires at once (the front end answers 552 before the client has sent the rest).
 * The spool file is created 0600 and removed by the caller (discard()).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export type SpoolResult =
  | { kind: 'ok'; path: string; size: number }
  | { kind: 'bare-line-ending' }
  | { kind: 'nul' }
  | { kind: 'oversize'; size: number }
  | { kind: 'write-error'; error: Error }
  | { kind: 'aborted' };

export interface SpoolOptions {
  path: string;
  maxBytes: number;
  bareLineEndings: 'reject' | 'normalize';
  /** called once, synchronously, as soon as the size limit is passed */
  onOversize?: (size: number) => void;
}

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

/** Scans chunks for line-ending violations across chunk boundaries. */
export class LineEndingChecker {
  private prev = -1;
  /** Returns the chunk (normalised if asked), or null on a violation in reject mode. */
  check(chunk: Buffer, normalize: boolean): Buffer | null {
    let bad = false;
    // A CR that ended the previous chunk must be followed by LF here.
    if (this.prev === CR && chunk.length > 0 && chunk[0] !== LF) bad = true;
    for (let i = chunk.indexOf(LF); i >= 0 && !bad; i = chunk.indexOf(LF, i + 1)) {
      const before = i > 0 ? chunk[i - 1] : this.prev;
      if (before !== CR) bad = true;
    }
    for (let i = chunk.indexOf(CR); i >= 0 && !bad; i = chunk.indexOf(CR, i + 1)) {
      if (i + 1 < chunk.length && chunk[i + 1] !== LF) bad = true;
    }
    const out = bad && normalize ? this.normalize(chunk) : chunk;
    if (chunk.length > 0) this.prev = chunk[chunk.length - 1] ?? -1;
    return bad && !normalize ? null : out;
  }
  /** At the end of the data: a trailing lone CR is a violation too. */
  finish(): boolean {
    return this.prev !== CR;
  }
  private normalize(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let start = 0;
    let i = 0;
    if (this.prev === CR && chunk[0] !== LF) parts.push(Buffer.from('\n'));
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === LF && (i > 0 ? chunk[i - 1] : this.prev) !== CR) {
        parts.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      } else if (c === CR && i + 1 < chunk.length && chunk[i + 1] !== LF) {
        parts.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
    parts.push(chunk.subarray(start));
    return Buffer.concat(parts);
  }
}

export function spoolMessage(stream: Readable, opts: SpoolOptions): Promise<SpoolResult> {
  return new Promise((resolve) => {
    const checker = new LineEndingChecker();
    const normalize = opts.bareLineEndings === 'normalize';
    let size = 0;
    let failure: SpoolResult | null = null;
    let out: WriteStream | null = createWriteStream(opts.path, { mode: 0o600, flags: 'wx' });
    let settled = false;
    const finish = (r: SpoolResult): void => {
      if (settled) return;
      settled = true;
      if (r.kind !== 'ok') void discard(opts.path);
      resolve(r);
    };
    const fail = (r: SpoolResult): void => {
      if (failure) return;
      failure = r;
      out?.destroy();
      out = null;
      // a write waiting for 'drain' (which a destroyed file stream never emits) paused the client's
      // stream: keep draining it, the reply comes at its end (else: a hang until DataTimeout)
      stream.resume();
    };
    out.on('error', (error) => {
      fail({ kind: 'write-error', error });
      // keep draining the client's data; the reply comes at the end
    });
    stream.on('data', (chunk: Buffer) => {
      if (failure) return;
      if (chunk.indexOf(0) >= 0) return fail({ kind: 'nul' });
      const checked = checker.check(chunk, normalize);
      if (!checked) return fail({ kind: 'bare-line-ending' });
      size += checked.length;
      if (size > opts.maxBytes) {
        fail({ kind: 'oversize', size });
        opts.onOversize?.(size);
        return;
      }
      if (out && !out.write(checked)) {
        stream.pause();
        out.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => {
      if (!failure && !normalize && !checker.finish()) fail({ kind: 'bare-line-ending' });
      if (failure) return finish(failure);
      const o = out;
      if (!o) return finish({ kind: 'aborted' });
      o.end(() => finish(failure ?? { kind: 'ok', path: opts.path, size }));
    });
    stream.on('error', () => {
      fail({ kind: 'aborted' });
      finish({ kind: 'aborted' });
    });
    stream.on('close', () => {
      if (!stream.readableEnded) {
        fail({ kind: 'aborted' });
        finish({ kind: 'aborted' });
      }
    });
  });
}

export async function discard(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}
