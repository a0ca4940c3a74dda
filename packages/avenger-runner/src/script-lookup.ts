/*
 * script-lookup — find a user's policy script among the candidates and check that it is safe.
 *
 * SUMMARY
 *   The directory is opened once (O_PATH) and checked with fstat; each candidate is then
 *   opened (O_PATH, following symlinks) *through that descriptor* (/proc/self/fd/N/NAME), so
 *   the directory cannot be swapped between check and use. The first candidate that exists
 *   wins; if it fails a check the result is `refused` (the runner never falls through to a
 *   later candidate past an unsafe one). The winner's descriptor is returned open: the child
 *   re-opens exactly that inode through /dev/fd/4, with the user's own permissions.
 *
 *   Checks (owner = the uid the script will run as, or root):
 *     directory: a directory, owned by owner or root, not group- or world-writable
 *     script:    a regular file, owned by owner or root, not group- or world-writable
 *     a symlink's target directory: the same checks as the directory
 *
 * PUBLIC
 *   findScript(dir, candidates, uid) → ScriptLookup
 *   closeQuietly(fd)
 *
 * SECURITY
 *   O_PATH descriptors carry no read or write access; they only pin the inode. Opening one
 *   never blocks (a FIFO planted as `rcpt` cannot stall the runner) and needs no read permission.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { isValidCandidateName } from './protocol.js';

/** Linux O_PATH (same value on x86-64 and arm64); Node does not export it. */
export const O_PATH = 0o10000000;

export type ScriptLookup =
  | { kind: 'none'; tried: string[] }
  | { kind: 'refused'; tried: string[]; script: string; reason: string }
  | { kind: 'found'; tried: string[]; script: string; name: string; fd: number }
  | { kind: 'error'; reason: string };

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
}

/** Why path (described by st) is unsafe to run as uid, or null if it is fine. */
export function unsafeReason(path: string, st: Stats, uid: number, want: 'file' | 'directory'): string | null {
  if (want === 'file' && !st.isFile()) return `${path} is not a regular file`;
  if (want === 'directory' && !st.isDirectory()) return `${path} is not a directory`;
  if (st.uid !== uid && st.uid !== 0) return `${path} is owned by uid ${st.uid}, not ${uid} or root`;
  if (st.mode & 0o020) return `${path} is group-writable`;
  if (st.mode & 0o002) return `${path} is world-writable`;
  return null;
}

/**
 * A symlinked script (rcpt+x -> ../scripts/common) sits in another directory: that one must pass
 * the directory checks too, or another user could swap the file it points to.
 */
function unsafeTargetDirectory(fd: number, script: string, base: string, uid: number): string | null {
  const target = readlinkSync(`/proc/self/fd/${fd}`);
  const parent = dirname(target);
  if (parent === base || target === script) return null;
  return unsafeReason(parent, statSync(parent), uid, 'directory');
}

/**
 * Look up candidates in dir for a script to run as uid. Names that contain '/' or NUL, or start
 * with '.', are skipped (never looked up, not listed in tried). The caller must close `fd` of a
 * 'found' result.
 */
export function findScript(dir: string, candidates: readonly string[], uid: number): ScriptLookup {
  const tried: string[] = [];
  const base = dir.endsWith('/') && dir.length > 1 ? dir.slice(0, -1) : dir;
  let dirFd: number;
  try {
    dirFd = openSync(base, O_PATH | constants.O_DIRECTORY);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      for (const name of candidates) if (isValidCandidateName(name)) tried.push(`${base}/${name}`);
      return { kind: 'none', tried };
    }
    return { kind: 'error', reason: `cannot open ${base}: ${code}` };
  }
  try {
    for (const name of candidates) {
      if (!isValidCandidateName(name)) continue;
      const script = `${base}/${name}`;
      tried.push(script);
      let fd: number;
      try {
        fd = openSync(`/proc/self/fd/${dirFd}/${name}`, O_PATH);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOENT') continue;
        return { kind: 'refused', tried, script, reason: `cannot open ${script}: ${code}` };
      }
      const reason =
        unsafeReason(base, fstatSync(dirFd), uid, 'directory') ??
        unsafeReason(script, fstatSync(fd), uid, 'file') ??
        unsafeTargetDirectory(fd, `${base}/${name}`, base, uid);
      if (reason !== null) {
        closeQuietly(fd);
        return { kind: 'refused', tried, script, reason };
      }
      return { kind: 'found', tried, script, name, fd };
    }
    return { kind: 'none', tried };
  } finally {
    closeQuietly(dirFd);
  }
}
