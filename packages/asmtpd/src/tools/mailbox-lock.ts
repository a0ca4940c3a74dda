/**
 * mailbox-lock.ts — the lock of an mbox file, as Mail Avenger's deliver(1) and dotlock(1) take
 * it: flock(2) on the file first, then the dot-lock file `MBOX.lock` beside it.
 *
 *   lockMailbox(path, {open, flock, timeoutMs}) -> Promise<MailboxLock>
 *     open 'append': the mbox is opened (created, mode 0666 & ~umask, when missing) for appending
 *          and reading (deliver); 'read': opened read-only if it exists, else the dot-lock alone
 *          (dotlock)
 *     1. flock(LOCK_EX) on that descriptor (unless flock is false: dotlock -L);
 *     2. MBOX.lock created with O_EXCL (holding our pid). A lock file that neither changed, nor saw
 *        the mbox change, for STALE_MS (30 s) is stale: it is removed and the lock taken. While
 *        we hold it, its mtime is refreshed every REFRESH_MS (15 s), so a slow holder is never
 *        taken for a dead one. If the dot-lock cannot be had, the flock is dropped first (no
 *        deadlock with a program that takes them in the other order).
 *     Both within timeoutMs, else LockTimeout; anything else (no permission to create MBOX.lock
 *     in the directory…) a LockError. Callers treat both as temporary failures (exit 75).
 *   lock.release()   removes MBOX.lock (if it is still ours) and closes the descriptor (the flock)
 *   flockDescriptor(fd, 'exclusive'|'shared', timeoutMs)   flock(2) alone (mailexec reads under
 *       a shared one)
 *
 * Node has no flock(2): util-linux's flock(1) (Essential on Debian) locks the descriptor it
 * inherits as fd 3. A flock belongs to the open file description, which this process keeps: the
 * lock outlives flock(1) and ends when the descriptor is closed. Our descriptors are close-on-exec,
 * so a command run under dotlock does not hold them.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, futimesSync, lstatSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';

export const STALE_MS = 30_000;
export const REFRESH_MS = 15_000;
export const FLOCK_PATH = '/usr/bin/flock';

export class LockError extends Error {}
export class LockTimeout extends LockError {}

export interface MailboxLock {
  /** the mbox, open ('append': read-write, O_APPEND; 'read': read-only), or null when it did not exist */
  fd: number | null;
  release(): void;
}

export interface LockOptions {
  open: 'append' | 'read';
  /** false: the dot-lock alone */
  flock: boolean;
  timeoutMs: number;
  /** tests: shorter stale and refresh periods */
  staleMs?: number;
  refreshMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

export function flockDescriptor(fd: number, kind: 'exclusive' | 'shared', timeoutMs: number): Promise<void> {
  const seconds = Math.max(timeoutMs, 1) / 1000;
  return new Promise((resolve, reject) => {
    const child = spawn(FLOCK_PATH, [kind === 'shared' ? '-s' : '-x', '-w', seconds.toFixed(3), '-E', '75', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
      env: {},
    });
    let said = '';
    child.stderr?.on('data', (b: Buffer) => (said += b.toString()));
    child.on('error', (err) => reject(new LockError(`${FLOCK_PATH}: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else if (code === 75) reject(new LockTimeout(`timed out waiting for the flock`));
      else reject(new LockError(`flock failed: ${said.trim() || `exit ${code}`}`));
    });
  });
}

function openMailbox(path: string, open: LockOptions['open']): number | null {
  try {
    return open === 'append' ? openSync(path, 'a+', 0o666) : openSync(path, 'r');
  } catch (err) {
    if (open === 'read' && errno(err) === 'ENOENT') return null;
    throw new LockError(`cannot open ${path}: ${(err as Error).message}`);
  }
}

/** When the lock file or the mbox last changed (ms), with the lock file's identity; null: no lock file. */
function lastChange(lockPath: string, mboxPath: string): { ino: number; mtimeMs: number; latest: number } | null {
  let lock: { ino: number; mtimeMs: number };
  try {
    lock = lstatSync(lockPath);
  } catch {
    return null;
  }
  let latest = lock.mtimeMs;
  try {
    latest = Math.max(latest, statSync(mboxPath).mtimeMs);
  } catch {
    /* no mbox: the lock file alone */
  }
  return { ino: lock.ino, mtimeMs: lock.mtimeMs, latest };
}

/**
 * Remove lockPath if it is still the file found stale (not a fresh one someone took meanwhile);
 * false when it could not be removed (a directory we may not write: then we can only wait).
 */
function breakStale(lockPath: string, seen: { ino: number; mtimeMs: number }): boolean {
  try {
    const now = lstatSync(lockPath);
    if (now.ino === seen.ino && now.mtimeMs === seen.mtimeMs) unlinkSync(lockPath);
    return true;
  } catch (err) {
    return errno(err) === 'ENOENT';
  }
}

async function takeDotLock(mboxPath: string, deadline: number, staleMs: number): Promise<number> {
  const lockPath = `${mboxPath}.lock`;
  for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
    try {
      const fd = openSync(lockPath, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      return fd;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw new LockError(`cannot create ${lockPath}: ${(err as Error).message}`);
    }
    const seen = lastChange(lockPath, mboxPath);
    const gone = seen === null || (Date.now() - seen.latest >= staleMs && breakStale(lockPath, seen));
    if (gone && Date.now() < deadline) continue; // released or broken: try again at once
    const left = deadline - Date.now();
    if (left <= 0) throw new LockTimeout(`timed out waiting for ${lockPath}`);
    await sleep(Math.min(wait + Math.random() * wait, left));
  }
}

export async function lockMailbox(path: string, o: LockOptions): Promise<MailboxLock> {
  const deadline = Date.now() + o.timeoutMs;
  const fd = openMailbox(path, o.open);
  try {
    if (fd !== null && o.flock) await flockDescriptor(fd, 'exclusive', o.timeoutMs);
    const lockFd = await takeDotLock(path, deadline, o.staleMs ?? STALE_MS);
    const ino = fstatSync(lockFd).ino;
    const lockPath = `${path}.lock`;
    const refresh = setInterval(() => {
      try {
        futimesSync(lockFd, new Date(), new Date());
      } catch {
        /* closed */
      }
    }, o.refreshMs ?? REFRESH_MS);
    refresh.unref();
    let released = false;
    return {
      fd,
      release() {
        if (released) return;
        released = true;
        clearInterval(refresh);
        try {
          if (lstatSync(lockPath).ino === ino) unlinkSync(lockPath);
        } catch {
          /* broken by someone who took it for stale: not ours to remove any more */
        }
        closeSync(lockFd);
        if (fd !== null) closeSync(fd);
      },
    };
  } catch (err) {
    if (fd !== null) closeSync(fd);
    throw err;
  }
}
