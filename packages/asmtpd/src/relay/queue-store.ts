/**
 * relay/queue-store — the hold queue's directories, its per-message records, and the claim that
 * lets one delivery attempt at a time work on a message, across processes, released by a crash.
 *
 * Layout of HoldQueue (hold-queue.ts writes tmp/ → new/; everything else is here):
 *   new/ cur/   queued: waiting for a retry or a flush (cur/ only if a Maildir tool moved it there)
 *   hold/       held by an admin (asmtpd --hold ID): never tried until --release ID
 *   work/ID~PID-START   claimed by the process PID (START: its start time in clock ticks since
 *                       boot, /proc/PID/stat field 22, so a reused pid is not taken for the owner)
 *   failed/     permanently refused or expired (the reply is in its record)
 *   meta/ID     the record of ID (JSON): attempts, last error, next retry, recipients done/failed
 * ID is the Maildir file name (without a ":2,…" info suffix).
 *
 * The claim is one rename(2) of the message file into work/: atomic, so of several processes
 * (the daemon's retries, asmtpd --flush, ETRN, ATRN) exactly one gets it; the others see ENOENT
 * and report it busy (or gone, when it was delivered meanwhile). A claim is released by renaming
 * it back to new/ (or removed, or moved to failed/). A process that dies leaves its claims in
 * work/; recoverClaims() — run by every flush before it starts — renames the claims of dead
 * owners back to new/. Liveness: kill(pid, 0) and the start time in /proc (so a pid reused by
 * another process counts as dead). Why not flock(2): Node has no API for it (a native module
 * for one call), and a lock file beside each message would be a second thing to keep in step.
 *
 * Records: written to meta/.ID.PID.tmp then renamed over meta/ID (a reader sees the old or the
 * new record, never a half one), fsynced when `durable` (recipients done or failed: that is what
 * keeps a recipient from getting the message twice after a power loss). Only the claim's owner
 * writes a record; --hold/--release/--delete first claim or move the file the same way.
 *
 * Public:
 *   QUEUE_SUBDIRS, idOf(fileName), ownerToken(), ownerAlive(token)
 *   listEntries(dir, states) → QueueEntry[]          { id, state, path } (no file is opened)
 *   listEntriesSettled(dir, states)                  the same, read twice (for listings and counts)
 *   claim(dir, entry) → Claim | 'busy' | 'gone'      Claim: release(), remove(), fail()
 *   recoverClaims(dir) → how many dead claims went back to new/
 *   readRecord(dir, id) / writeRecord(dir, id, record, { durable })
 *   moveEntry(dir, id, from, to) → true when moved (hold/release by an admin)
 *   requeueFailed(dir, entry, now) → RequeueRecord | 'busy' | 'gone'   failed/ → new/ (asmtpd --release):
 *     the failed recipients are pending again (their replies kept in the record's `requeued`
 *     history), the delivered ones stay done, attempts start again at 0, due at `now`
 */
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const QUEUE_SUBDIRS = ['tmp', 'new', 'cur', 'hold', 'work', 'failed', 'meta'] as const;

export type QueueState = 'queued' | 'held' | 'active' | 'failed';

const STATE_DIRS: Record<QueueState, readonly string[]> = {
  queued: ['new', 'cur'],
  held: ['hold'],
  active: ['work'],
  failed: ['failed'],
};

export interface QueueEntry {
  id: string;
  state: QueueState;
  /** the file as it is now (work/: with the owner suffix) */
  path: string;
  /** work/ only: the owner's token PID-START */
  owner?: string;
}

export interface FailedRecipientRecord {
  to: string;
  code: number;
  enhanced: string;
  text: string;
}

export interface QueueRecord {
  attempts: number;
  /** ms since the epoch */
  lastAttempt?: number;
  lastError?: string;
  nextRetry?: number;
  /** recipients the downstream took (never sent again) */
  done: string[];
  /** recipients refused for good (or expired), with the reply; a DSN was queued for them */
  failed: FailedRecipientRecord[];
  /** each time an admin sent the message back from failed/ (asmtpd --release ID): what had failed */
  requeued?: RequeueRecord[];
}

export interface RequeueRecord {
  /** ms since the epoch; HoldMaxAge counts from the last one */
  at: number;
  /** the attempts made before */
  attempts: number;
  failed: FailedRecipientRecord[];
}

export function emptyRecord(): QueueRecord {
  return { attempts: 0, done: [], failed: [] };
}

/** The ID of a queue file name: without a Maildir ":2,FLAGS" suffix or a claim's "~OWNER". */
export function idOf(fileName: string): string {
  return fileName.replace(/[~:].*$/, '');
}

function startTimeOf(pid: number | 'self'): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // fields after the ")" of the command name: field 3 (state) is index 0; field 22 is index 19
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

let myToken: string | null = null;

/** This process as a claim owner: PID-START (START 0 when /proc is not there). */
export function ownerToken(): string {
  return (myToken ??= `${process.pid}-${startTimeOf('self') ?? '0'}`);
}

/** Is the process of a claim token still the one that made it? */
export function ownerAlive(token: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(token);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return token === ownerToken();
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = startTimeOf(pid);
  return start === null || m[2] === '0' || start === m[2];
}

async function names(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).filter((n) => !n.startsWith('.'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function ensureQueueDirs(dir: string): Promise<void> {
  for (const sub of QUEUE_SUBDIRS) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
}

export async function listEntries(dir: string, states: readonly QueueState[]): Promise<QueueEntry[]> {
  const out: QueueEntry[] = [];
  for (const state of states)
    for (const sub of STATE_DIRS[state])
      for (const name of await names(join(dir, sub))) {
        const entry: QueueEntry = { id: idOf(name), state, path: join(dir, sub, name) };
        if (state === 'active') entry.owner = name.slice(name.indexOf('~') + 1);
        out.push(entry);
      }
  return out;
}

/**
 * listEntries() twice, merged by ID (the second listing wins): a message that moved between two
 * directories while the first listing read them (work/ → new/ after new/ was read) is not missed.
 */
export async function listEntriesSettled(dir: string, states: readonly QueueState[]): Promise<QueueEntry[]> {
  const first = await listEntries(dir, states);
  const byId = new Map(first.map((e) => [e.id, e]));
  for (const e of await listEntries(dir, states)) byId.set(e.id, e);
  return [...byId.values()];
}

export interface Claim {
  id: string;
  /** the claimed file (work/ID~OWNER) */
  path: string;
  /** back to new/ for a later attempt */
  release(): Promise<void>;
  /** delivered to every recipient: the file and its record go */
  remove(): Promise<void>;
  /** into failed/ (its record stays in meta/) */
  fail(): Promise<void>;
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function claimOf(dir: string, id: string, path: string): Claim {
  return {
    id,
    path,
    release: () => rename(path, join(dir, 'new', id)),
    async remove() {
      await unlink(path);
      await unlink(join(dir, 'meta', id)).catch(() => {});
    },
    async fail() {
      await mkdir(join(dir, 'failed'), { recursive: true, mode: 0o700 });
      await rename(path, join(dir, 'failed', id));
      await syncDir(join(dir, 'failed'));
    },
  };
}

/** Take `entry` (queued or held) for one attempt: 'busy' when another process has it, 'gone' when it left. */
export async function claim(dir: string, entry: QueueEntry): Promise<Claim | 'busy' | 'gone'> {
  const path = join(dir, 'work', `${entry.id}~${ownerToken()}`);
  try {
    await rename(entry.path, path);
    return claimOf(dir, entry.id, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      const work = await names(join(dir, 'work'));
      if (!work.some((n) => idOf(n) === entry.id)) {
        // work/ may be missing (a queue written by an older version): make it, then try once more
        if (!(await names(dir)).includes('work')) {
          await ensureQueueDirs(dir);
          return claim(dir, entry);
        }
        return 'gone';
      }
      return 'busy';
    }
    throw err;
  }
}

/** The claims of processes that died: back to new/ (the crash window: see docs/hold-queue.md). */
export async function recoverClaims(dir: string): Promise<number> {
  let n = 0;
  for (const e of await listEntries(dir, ['active'])) {
    if (ownerAlive(e.owner ?? '')) continue;
    try {
      await rename(e.path, join(dir, 'new', e.id));
      n++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return n;
}

export async function readRecord(dir: string, id: string): Promise<QueueRecord> {
  try {
    const r = JSON.parse(await readFile(join(dir, 'meta', id), 'utf8')) as Partial<QueueRecord>;
    return {
      ...emptyRecord(),
      ...r,
      done: Array.isArray(r.done) ? r.done : [],
      failed: Array.isArray(r.failed) ? r.failed : [],
      ...(Array.isArray(r.requeued) ? { requeued: r.requeued } : {}),
    };
  } catch {
    return emptyRecord();
  }
}

export async function writeRecord(
  dir: string,
  id: string,
  record: QueueRecord,
  opts: { durable: boolean },
): Promise<void> {
  const meta = join(dir, 'meta');
  const tmp = join(meta, `.${id}.${process.pid}.tmp`);
  const data = JSON.stringify(record) + '\n';
  try {
    await writeFile(tmp, data, { mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(meta, { recursive: true, mode: 0o700 });
    await writeFile(tmp, data, { mode: 0o600 });
  }
  if (opts.durable) {
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  await rename(tmp, join(meta, id));
  if (opts.durable) await syncDir(meta);
}

/** An admin's move (hold/, new/): true when the file was there and moved; durable. */
export async function moveEntry(dir: string, entry: QueueEntry, to: 'hold' | 'new'): Promise<boolean> {
  await mkdir(join(dir, to), { recursive: true, mode: 0o700 });
  try {
    await rename(entry.path, join(dir, to, entry.id));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  await syncDir(join(dir, to));
  return true;
}

/**
 * An admin's requeue of a failed message (Postfix's `postsuper -r`): claimed out of failed/ (so no
 * --delete or second --release works on it meanwhile), its record rewritten (fsynced), then renamed
 * to new/ (fsynced). A crash before the record leaves a dead claim whose record still says
 * "failed": the next pass settles it back into failed/; after the record, it is recovered into new/.
 */
export async function requeueFailed(
  dir: string,
  entry: QueueEntry,
  now: number,
): Promise<RequeueRecord | 'busy' | 'gone'> {
  const c = await claim(dir, entry);
  if (c === 'busy' || c === 'gone') return c;
  try {
    const rec = await readRecord(dir, entry.id);
    const requeue: RequeueRecord = { at: now, attempts: rec.attempts, failed: rec.failed };
    const next: QueueRecord = {
      attempts: 0,
      nextRetry: now,
      done: rec.done,
      failed: [],
      requeued: [...(rec.requeued ?? []), requeue],
    };
    await writeRecord(dir, entry.id, next, { durable: true });
    await c.release();
    await syncDir(join(dir, 'new'));
    return requeue;
  } catch (err) {
    await c.fail().catch(() => {});
    throw err;
  }
}
