// Where a server's CPU goes, process by process (bench/fair): a snapshot of every live process of
// its cgroup from /proc/PID/stat — its own user+system time and the time of its children it has
// reaped (cutime+cstime: a script that exited is counted at its parent: asmtpd's spawner, Postfix's
// spawn or master, Haraka's worker) — under a role name. The difference of two snapshots is the
// breakdown of a measurement; the cgroup's own counter (cgroup.mjs) stays the total.
import { readFileSync } from 'node:fs';
import { CLK_TCK } from '../smtp/lib.mjs';

function stat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { comm, ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), kids: Number(f[13]) + Number(f[14]), args };
  } catch {
    return null;
  }
}

/** A role name: the script a node or perl process runs, else its command name. */
function role(p, pid, rootPid) {
  const script = p.args.slice(1).find((a) => /\.(m?js|pl)$|\/bin\/(asmtpd|haraka)$/.test(a));
  if (!script) return p.comm;
  const base = script.split('/').pop();
  if (base === 'asmtpd' || base === 'haraka') return pid === rootPid ? `${base} primary` : `${base} worker`;
  if (base === 'haraka.js') return 'haraka worker'; // node:cluster forks the workers with Haraka's main module
  return base;
}

/** pid → {role, self, kids} (CPU seconds) for every process of the group now. */
export function snapshot(group, rootPid) {
  const out = new Map();
  for (const pid of group.pids()) {
    const p = stat(pid);
    if (p) out.set(pid, { role: role(p, pid, rootPid), ppid: p.ppid, self: p.self / CLK_TCK, kids: p.kids / CLK_TCK });
  }
  return out;
}

/**
 * role → CPU seconds between two snapshots ("role (exited children)" for reaped children). A
 * process of the first snapshot that exited meanwhile (e.g. Postfix's spawn after max_use) is
 * counted at the parent that reaped it, whose cutime grew by all of its life: the part before the
 * first snapshot is taken off again.
 */
export function breakdown(before, after) {
  const by = {};
  const add = (k, v) => v > 0 && (by[k] = (by[k] ?? 0) + v);
  const earlier = new Map(); // parent pid → CPU its exited children had used before the first snapshot
  for (const [pid, b] of before) if (!after.has(pid)) earlier.set(b.ppid, (earlier.get(b.ppid) ?? 0) + b.self + b.kids);
  for (const [pid, a] of after) {
    const b = before.get(pid) ?? { self: 0, kids: 0 };
    add(a.role, a.self - b.self);
    add(`${a.role} (exited children)`, a.kids - b.kids - (earlier.get(pid) ?? 0));
  }
  return by;
}
