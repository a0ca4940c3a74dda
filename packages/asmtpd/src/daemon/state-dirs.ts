/**
 * state-dirs.ts — DBDir, its spool directory, HoldQueue, and the log and pid files, made ready at
 * start without ever letting root follow a path the SMTP process can change.
 *
 *   prepareStateDirectories(config, owner | null) -> {kind: 'ok', dbDirFd} | {kind: 'error', message}
 *   openLogFile(dbDirFd, ownerUid | null) -> fd        DBDir/asmtpd.log, for a detached daemon
 *   writePidFile(dbDirFd) / removePidFile(dbDir)        DBDir/asmtpd.pid
 *
 * As root (owner = DaemonUser): DBDir, and HoldQueue when it is outside DBDir, are each taken over
 * as one directory, never recursively: its parent must belong to root and be writable by root
 * only (so that nobody else can swap the name), it is created 0750 if missing, opened
 * O_NOFOLLOW, and then — on the descriptor — refused when it is world-writable, group-writable by
 * another group, owned by a third account, or owned by root and not empty (a mistaken DBDir such
 * as /var/spool); a root-owned empty one is given to DaemonUser with fchown. DBDir/spool is made
 * the same way relative to the DBDir descriptor: the script runner opens it at start. Everything
 * else inside DBDir (the hold queue's Maildir, state.sqlite, spool files) is created later by the
 * SMTP process itself, as DaemonUser.
 * Log and pid files are opened relative to the DBDir descriptor with O_NOFOLLOW (the pid file
 * O_EXCL after unlinking a stale name) and kept only when they are regular files with one link,
 * owned by root or DaemonUser.
 * Not root: the directories are simply created (mode 0700) for the invoking user.
 */
import {
  closeSync,
  constants,
  fchownSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/types.js';
import type { Account } from '../recipients/accounts.js';

export type StateDirsResult = { kind: 'ok'; dbDirFd: number } | { kind: 'error'; message: string };

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
export const LOG_FILE = 'asmtpd.log';
export const PID_FILE = 'asmtpd.pid';

class StateDirError extends Error {}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function mkdirIfMissing(path: string, mode: number): boolean {
  try {
    mkdirSync(path, mode);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    throw new StateDirError(`cannot create ${path}: ${errnoOf(err)}`);
  }
}

function openDirectory(path: string, label: string): number {
  try {
    return openSync(path, DIR_FLAGS);
  } catch (err) {
    const code = errnoOf(err);
    throw new StateDirError(
      code === 'ELOOP'
        ? `${label} must not be a symbolic link (name the real directory)`
        : `cannot open ${label}: ${code}`,
    );
  }
}

/** Give the directory on fd to owner (one fchown, no recursion), or say why not. */
function claim(fd: number, label: string, owner: Account, created: boolean): void {
  const st = fstatSync(fd);
  if (st.mode & 0o002) throw new StateDirError(`${label} is world-writable`);
  if (st.mode & 0o020 && st.gid !== owner.gid && st.gid !== 0)
    throw new StateDirError(`${label} is writable by group ${st.gid}`);
  if (st.uid === owner.uid) return;
  if (st.uid !== 0)
    throw new StateDirError(`${label} belongs to uid ${st.uid}, not to ${owner.name} (uid ${owner.uid}) or root`);
  if (!created && readdirSync(`/proc/self/fd/${fd}`).length > 0) {
    throw new StateDirError(
      `${label} belongs to root and is not empty: name a directory of asmtpd's own, or give it to ${owner.name} (chown -R ${owner.name}:)`,
    );
  }
  fchownSync(fd, owner.uid, owner.gid);
}

/** Take over one directory (DBDir or HoldQueue) for owner; returns its descriptor. */
function takeOver(path: string, label: string, owner: Account): number {
  const parent = dirname(path);
  const pst = statSync(parent);
  if (!pst.isDirectory() || pst.uid !== 0 || pst.mode & 0o022) {
    throw new StateDirError(`${label}'s parent ${parent} must be a directory of root's, writable by root only`);
  }
  const created = mkdirIfMissing(path, 0o750);
  const fd = openDirectory(path, label);
  try {
    claim(fd, label, owner, created);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

export function prepareStateDirectories(
  config: Pick<Config, 'dbDir' | 'holdQueue'>,
  owner: Account | null,
): StateDirsResult {
  if (owner === null) {
    try {
      mkdirSync(join(config.dbDir, 'spool'), { recursive: true, mode: 0o700 });
      mkdirSync(config.holdQueue, { recursive: true, mode: 0o700 });
      return { kind: 'ok', dbDirFd: openDirectory(config.dbDir, `DBDir ${config.dbDir}`) };
    } catch (err) {
      return { kind: 'error', message: (err as Error).message };
    }
  }
  let dbDirFd: number | null = null;
  try {
    dbDirFd = takeOver(config.dbDir, `DBDir ${config.dbDir}`, owner);
    const spool = `/proc/self/fd/${dbDirFd}/spool`;
    const created = mkdirIfMissing(spool, 0o700);
    const spoolFd = openDirectory(spool, `${config.dbDir}/spool`);
    try {
      claim(spoolFd, `${config.dbDir}/spool`, owner, created);
    } finally {
      closeSync(spoolFd);
    }
    if (!isInside(config.holdQueue, config.dbDir))
      closeSync(takeOver(config.holdQueue, `HoldQueue ${config.holdQueue}`, owner));
    return { kind: 'ok', dbDirFd };
  } catch (err) {
    if (dbDirFd !== null) closeSync(dbDirFd);
    if (err instanceof StateDirError) return { kind: 'error', message: err.message };
    return { kind: 'error', message: `cannot prepare DBDir ${config.dbDir}: ${(err as Error).message}` };
  }
}

/** Keep fd only if it is a regular file with one link owned by root or ownerUid; else close it and throw. */
function checkedFile(fd: number, name: string, ownerUid: number | null): number {
  const st = fstatSync(fd);
  const mine = st.uid === (process.getuid?.() ?? -1) || st.uid === 0 || (ownerUid !== null && st.uid === ownerUid);
  if (!st.isFile() || st.nlink !== 1 || !mine) {
    closeSync(fd);
    throw new Error(`${name} in DBDir is not a regular file of asmtpd's with one link: remove it`);
  }
  return fd;
}

export function openLogFile(dbDirFd: number, ownerUid: number | null): number {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NOCTTY;
  return checkedFile(openSync(`/proc/self/fd/${dbDirFd}/${LOG_FILE}`, flags, 0o640), LOG_FILE, ownerUid);
}

export function writePidFile(dbDirFd: number): void {
  const path = `/proc/self/fd/${dbDirFd}/${PID_FILE}`;
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NOCTTY;
  const fd = checkedFile(openSync(path, flags, 0o644), PID_FILE, null);
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
}

/** Remove DBDir/asmtpd.pid if it still names this process. */
export function removePidFile(dbDir: string): void {
  const path = join(dbDir, PID_FILE);
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
  } catch {
    /* already gone */
  }
}
