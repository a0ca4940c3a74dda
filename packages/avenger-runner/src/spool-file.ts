/*
 * spool-file — open a body test's message in the spool directory, safely.
 *
 * SUMMARY
 *   openSpoolDirectory(path, ownerUid) → fd     once, at start: the directory itself, checked
 *   openSpoolFile(dirFd, name, ownerUid) → {fd} | {refused}
 *       The file is opened by name relative to the directory descriptor (through
 *       /proc/self/fd/N/NAME), O_NOFOLLOW | O_NONBLOCK, and kept only if it is a regular file with
 *       one link, owned by ownerUid (the SMTP process). The descriptor is what the body test gets
 *       as its stdin: the very inode that was checked.
 *
 * SECURITY
 *   The SMTP process can write the spool directory and swap any name in it, so the runner never
 *   opens a path there by name from /: not a symlink (O_NOFOLLOW), not a hard link to someone
 *   else's file (link count 1, owner), not a FIFO or device (regular file; O_NONBLOCK so that
 *   opening a FIFO cannot block). A refusal names no path.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { isValidSpoolName } from './protocol.js';

const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Open the spool directory at start; throws with the reason when it is not safe to use. */
export function openSpoolDirectory(path: string, ownerUid: number | null): number {
  const fd = openSync(path, DIRECTORY_FLAGS);
  const st = fstatSync(fd);
  const problem =
    ownerUid !== null && st.uid !== ownerUid
      ? `owned by uid ${st.uid}, not ${ownerUid}`
      : st.mode & 0o022
        ? 'group- or world-writable'
        : null;
  if (problem !== null) {
    closeSync(fd);
    throw new Error(`spool directory ${path} is ${problem}`);
  }
  return fd;
}

export function openSpoolFile(
  dirFd: number,
  name: string,
  ownerUid: number | null,
): { fd: number } | { refused: string } {
  if (!isValidSpoolName(name)) return { refused: 'spool file name refused' };
  let fd: number;
  try {
    fd = openSync(`/proc/self/fd/${dirFd}/${name}`, FILE_FLAGS);
  } catch (err) {
    return { refused: `spool file cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1 || (ownerUid !== null && st.uid !== ownerUid)) {
    closeSync(fd);
    return { refused: 'spool file refused: not a regular file with one link owned by the SMTP process' };
  }
  return { fd };
}
