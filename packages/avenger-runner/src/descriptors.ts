/*
 * descriptors — close descriptors the runner inherited by accident.
 *
 * SUMMARY
 *   Node and libuv open every descriptor close-on-exec, so a child gets only the descriptors
 *   its stdio lists. But a descriptor the runner *inherited* without close-on-exec (a leak in
 *   whatever started the daemon: a shell, a supervisor) would pass on to every script.
 *   closeInheritedDescriptors() closes, once at start-up, every descriptor above 2 that lacks
 *   close-on-exec: by construction none of them is Node's own.
 *
 * PUBLIC
 *   closeInheritedDescriptors() → number[]  (the descriptors closed)
 *
 * SECURITY
 *   Reads /proc/self/fdinfo (Linux). Without /proc it does nothing and says so in the log.
 */
import { closeSync, readdirSync, readFileSync } from 'node:fs';

const O_CLOEXEC_FLAG = 0o2000000;

export function closeInheritedDescriptors(): number[] {
  const closed: number[] = [];
  for (const name of readdirSync('/proc/self/fdinfo')) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // the directory listing's own descriptor, gone already
    }
    const flags = /^flags:\s+([0-7]+)/m.exec(info)?.[1];
    if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC_FLAG) !== 0) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      /* raced away */
    }
  }
  return closed;
}
