/**
 * A data file named by a directive (DomainFile, AliasFile), parsed, and re-read when it changes:
 * no SIGHUP, no watcher (asmtpd.conf(5): "asmtpd will re-read the AliasFile, DomainFile …
 * automatically if you change these").
 *
 * Public: createReloadingFile(path, parse, empty, options) → ReloadingFile { current() };
 * readDataFile(path) → {kind:'ok', text, signature} | {kind:'error', message}; ReloadOptions; FileParse.
 *
 * current() is on the hot path of every RCPT: it stats the file at most once per
 * checkIntervalMs (default 1 s) and reads and parses it only when its modification time, size
 * or inode changed (an editor's rename-into-place changes the inode). The file is read once
 * when the table is created, so problems are reported at start.
 *
 * Problems go to options.onIssues as ConfigIssue (`FILE:LINE: message`, line 0 for the whole
 * file): the parser's bad lines after each (re)read, and a file that cannot be read. A file that
 * cannot be read keeps the last good contents (a transient state during an edit must not turn
 * every recipient into an unknown one); the same failure is reported once, not every second.
 * Synchronous on purpose: the file is small and read only when it changed.
 */
import { readFileSync, statSync } from 'node:fs';
import type { ConfigIssue } from './issues.js';

export interface FileParse<T> {
  value: T;
  /** bad lines, skipped */
  issues: ConfigIssue[];
}

export interface ReloadOptions {
  /** where problems go (the daemon logs them); default: dropped */
  onIssues?: (issues: ConfigIssue[]) => void;
  /** clock, for tests; default Date.now */
  now?: () => number;
  /** least time between two stats of the file; default 1000 */
  checkIntervalMs?: number;
}

export interface ReloadingFile<T> {
  /** the parsed contents, re-read first if the file changed */
  current(): T;
}

export const DEFAULT_CHECK_INTERVAL_MS = 1000;

function describeReadError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  return `cannot read: ${(err as Error).message}`;
}

export type DataFileRead =
  | { kind: 'ok'; text: string; /** changes when the file does: mtime, size, inode */ signature: string }
  | { kind: 'error'; message: string };

/** Read a data file (UTF-8, a regular file), with its change signature. */
export function readDataFile(path: string): DataFileRead {
  try {
    const st = statSync(path);
    if (!st.isFile()) return { kind: 'error', message: 'not a regular file' };
    return { kind: 'ok', text: readFileSync(path, 'utf8'), signature: `${st.mtimeMs}:${st.size}:${st.ino}` };
  } catch (err) {
    return { kind: 'error', message: describeReadError(err) };
  }
}

function signatureOf(path: string): string | null {
  try {
    const st = statSync(path);
    return st.isFile() ? `${st.mtimeMs}:${st.size}:${st.ino}` : null;
  } catch {
    return null;
  }
}

export function createReloadingFile<T>(
  path: string,
  parse: (text: string, file: string) => FileParse<T>,
  empty: T,
  options: ReloadOptions = {},
): ReloadingFile<T> {
  const now = options.now ?? Date.now;
  const intervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  const report = options.onIssues ?? ((): void => {});
  let value = empty;
  let signature: string | null = null;
  let lastFailure: string | null = null;
  let everRead = false;
  let checkedAt = -Infinity;

  const refresh = (): void => {
    checkedAt = now();
    const current = signatureOf(path);
    if (current !== null && current === signature) return;
    const read = readDataFile(path);
    if (read.kind === 'error') {
      if (read.message !== lastFailure) {
        const kept = everRead ? '; keeping the last contents read' : '';
        report([{ file: path, line: 0, message: read.message + kept }]);
      }
      lastFailure = read.message;
      signature = null; // read it again as soon as it is back, even with the old signature
      return;
    }
    const parsed = parse(read.text, path);
    value = parsed.value;
    signature = read.signature;
    lastFailure = null;
    everRead = true;
    if (parsed.issues.length > 0) report(parsed.issues);
  };

  refresh();
  return {
    current() {
      if (now() - checkedAt >= intervalMs) refresh();
      return value;
    },
  };
}
