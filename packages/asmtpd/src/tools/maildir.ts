/**
 * maildir.ts — one message into a Maildir, as the Maildir specification says
 * (https://cr.yp.to/proto/maildir.html), crash-safe.
 *
 *   deliverToMaildir(dir, message) -> the path of the new file
 *     1. DIR, DIR/tmp, DIR/new and DIR/cur are created when missing (0777 & ~umask; parents too);
 *        a Maildir++ folder (a name starting with "." inside a Maildir, or inside a directory
 *        that does not exist yet and is made a Maildir) gets its `maildirfolder` file, as
 *        Courier and Dovecot expect
 *     2. the message is written to tmp/NAME and fsynced, linked to new/NAME (rename where the file
 *        system has no hard links), tmp/NAME removed, and new/ fsynced: once this returns, the
 *        message survives a crash; a reader never sees a partial file in new/
 *   uniqueName() -> SECONDS.M<usec, 6 digits>P<pid>R<random>Q<count>.HOST  ("/" and ":" of the host name as
 *        \057 and \072)
 * A failure leaves nothing in new/ (tmp/NAME is removed) and throws.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

let count = 0;

/** Now, in microseconds of wall-clock time (Date.now() has milliseconds only). */
function nowMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

export function uniqueName(micros = nowMicros()): string {
  // M is the microsecond within that second, so names sort by time (mailexec relies on it)
  const seconds = Math.floor(micros / 1_000_000);
  // zero-padded, so that names of one second also sort by time as plain strings
  const usec = String(micros % 1_000_000).padStart(6, '0');
  const host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${seconds}.M${usec}P${process.pid}R${randomBytes(8).toString('hex')}Q${++count}.${host}`;
}

function isMaildir(dir: string): boolean {
  return ['tmp', 'new', 'cur'].every((d) => existsSync(join(dir, d)));
}

/**
 * Create the Maildir when missing; a directory that exists gets the subdirectories it lacks. A
 * Maildir++ folder (NAME starting with "." in a Maildir, or in a directory that does not exist
 * yet, which is then made a Maildir) gets its maildirfolder file.
 */
export function ensureMaildir(dir: string): void {
  const name = basename(dir);
  const parent = dirname(dir);
  const folder = name.startsWith('.') && name !== '.' && name !== '..' && (!existsSync(parent) || isMaildir(parent));
  if (folder && !existsSync(parent)) ensureMaildir(parent);
  mkdirSync(dir, { recursive: true, mode: 0o777 });
  for (const sub of ['tmp', 'new', 'cur']) {
    try {
      mkdirSync(join(dir, sub), { mode: 0o777 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (folder && !existsSync(join(dir, 'maildirfolder'))) writeFileSync(join(dir, 'maildirfolder'), '', { mode: 0o666 });
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, parts: readonly Buffer[]): void {
  for (const part of parts) {
    for (let done = 0; done < part.length; ) done += writeSync(fd, part, done, part.length - done);
  }
}

/** Deliver the concatenation of parts; returns the path in new/. */
export function deliverToMaildir(dir: string, parts: readonly Buffer[]): string {
  ensureMaildir(dir);
  for (let attempt = 0; ; attempt++) {
    const name = uniqueName();
    const tmp = join(dir, 'tmp', name);
    const dest = join(dir, 'new', name);
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', 0o666);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 5) continue;
      throw err;
    }
    try {
      writeAll(fd, parts);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkSync(tmp);
      throw err;
    }
    closeSync(fd);
    try {
      linkSync(tmp, dest);
      unlinkSync(tmp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && attempt < 5) {
        unlinkSync(tmp);
        continue;
      }
      if ((code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') && !existsSync(dest)) {
        renameSync(tmp, dest); // no hard links here: rename never leaves a partial file either
      } else {
        unlinkSync(tmp);
        throw err;
      }
    }
    fsyncDirectory(join(dir, 'new'));
    return dest;
  }
}
