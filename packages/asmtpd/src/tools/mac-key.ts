/**
 * mac-key.ts — macutil's secret: the passphrase file.
 *
 *   passFilePath(env, option) -> path      --passfile, else MACUTIL_PASSFILE, else $HOME/.avenger/.macpass
 *   readKey(path) -> KeyFile | null        null when the file does not exist
 *   readOrCreateKey(path, defaultDir) -> KeyFile & {created}
 *
 * The file holds a passphrase and a newline, as Mail Avenger's does (an administrator may write
 * one by hand); the key is its text without the final newline. Created on first use with 32
 * random bytes (base64url), mode 0600: written to a temporary file beside it (O_EXCL, fsync) and
 * put in place with link(2), which never replaces an existing file. So of two first uses at once
 * one links and the other gets EEXIST and reads the winner's key: both end with the same key, and
 * a reader never sees a half-written file. The directory is created (0700) only when it is the
 * default ~/.avenger. A key file that others may read or write is used, with a warning.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

const MAX_KEY_FILE_BYTES = 4096;

export interface KeyFile {
  key: Buffer;
  /** a warning for stderr (the file is open to others), or null */
  warning: string | null;
}

export function passFilePath(
  env: Readonly<Record<string, string | undefined>>,
  option: string | null,
): { path: string; defaultDir: string | null } {
  if (option) return { path: option, defaultDir: null };
  if (env.MACUTIL_PASSFILE) return { path: env.MACUTIL_PASSFILE, defaultDir: null };
  const home = env.HOME;
  if (!home) throw new Error('HOME is not set (or give --passfile=FILE or MACUTIL_PASSFILE)');
  const dir = join(home, '.avenger');
  return { path: join(dir, '.macpass'), defaultDir: dir };
}

export function readKey(path: string): KeyFile | null {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  if (text.length > MAX_KEY_FILE_BYTES) throw new Error(`${path}: larger than ${MAX_KEY_FILE_BYTES} bytes`);
  let end = text.length;
  if (text[end - 1] === 0x0a) end--;
  if (text[end - 1] === 0x0d) end--;
  if (end === 0) throw new Error(`${path}: empty passphrase`);
  const mode = statSync(path).mode;
  const warning = mode & 0o077 ? `${path} can be read or written by others: chmod 600 it` : null;
  return { key: text.subarray(0, end), warning };
}

export function readOrCreateKey(path: string, defaultDir: string | null): KeyFile & { created: boolean } {
  const existing = readKey(path);
  if (existing) return { ...existing, created: false };
  if (defaultDir !== null) {
    try {
      mkdirSync(defaultDir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${defaultDir}: ${(err as Error).message}`);
    }
  }
  const temp = join(dirname(path), `.macpass.tmp.${process.pid}.${randomBytes(6).toString('hex')}`);
  let created = false;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, randomBytes(32).toString('base64url') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, path);
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${path}: ${(err as Error).message}`);
  } finally {
    unlinkSync(temp);
  }
  const key = readKey(path);
  if (!key) throw new Error(`${path}: vanished right after it was created`);
  return { ...key, created };
}
