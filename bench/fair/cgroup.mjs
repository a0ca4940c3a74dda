// CPU accounting for bench/fair: one cgroup v2 per server, so every process of it is counted —
// the master, every worker or daemon it forks, and the short-lived ones (a script per recipient,
// Postfix's spawn children), which a walk of /proc would miss once reaped by a parent that is
// not counted. A process joins before it execs the server (`wrap()`) or is moved in while it
// still is the only process of its server (`add()`); everything it forks later is born inside.
// Counted: `cpu.stat` usage_usec (user + system, of live and exited members alike).
//
// Works with the unified hierarchy at /sys/fs/cgroup (cgroup v2 only) or /sys/fs/cgroup/unified
// (a hybrid v1/v2 machine, as this VM): cpu.stat is there without enabling any controller.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The mount point of the cgroup2 hierarchy (from /proc/mounts), or null. */
export function cgroup2Root() {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && existsSync(join(dir, 'cgroup.procs'))) return dir;
  }
  return null;
}

/** The run's parent group: ROOT/asmtpd-bench-fair-PID, holding one group per server. */
export function makeRunGroup() {
  const root = cgroup2Root();
  if (!root) throw new Error('no cgroup2 hierarchy mounted (needed to count every process of a server)');
  const dir = join(root, `asmtpd-bench-fair-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const groups = [];
  return {
    dir,
    /** A group for one server (or the load client, the resolver, ...). */
    group(name) {
      const g = cpuGroup(join(dir, name), root);
      groups.push(g);
      return g;
    },
    /** Removes the groups (their processes must be gone; any left are moved to the root). */
    remove() {
      for (const g of groups) g.remove();
      try {
        rmdirSync(dir);
      } catch {
        /* still busy: left behind, harmless */
      }
    },
  };
}

function cpuGroup(dir, root) {
  mkdirSync(dir, { recursive: true });
  const procs = join(dir, 'cgroup.procs');
  return {
    dir,
    procs,
    /** Moves a process (all its threads) into the group. */
    add(pid) {
      writeFileSync(procs, `${pid}\n`);
    },
    /** argv that joins the group and then execs cmd: spawn(...wrap(cmd, args)). */
    wrap(cmd, args) {
      return ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, cmd, ...args]];
    },
    /** CPU seconds used by every process that has been in the group since it was made. */
    cpuSeconds() {
      const m = /usage_usec (\d+)/.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
      return m ? Number(m[1]) / 1e6 : 0;
    },
    pids() {
      return readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
    },
    remove() {
      try {
        for (const pid of this.pids()) writeFileSync(join(root, 'cgroup.procs'), `${pid}\n`);
        rmdirSync(dir);
      } catch {
        /* best effort */
      }
    },
  };
}
