/**
 * What the kernel says about a daemon's processes (root only for other users' processes), and the
 * means of an attacker for the security tests: code run inside a live process (gdb), a command
 * run as some account (setpriv).
 *
 *   readProc(pid) / processTree(rootPid) / roleOf(proc, daemonPid)
 *   dumpable(proc)          from the owner of /proc/PID/fd: the kernel gives a non-dumpable process's
 *                           files to root; unknowable for a root process (null)
 *   callInProcess(pid, c)   gdb attaches and evaluates the C expression c inside the process, with
 *                           its credentials: what a bug in that process would let an attacker do
 *   runAs(uid, gid, argv)   a command as that account, no supplementary groups (setpriv)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';

export interface Proc {
  pid: number;
  ppid: number;
  cmd: string;
  uid: number[];
  gid: number[];
  groups: number[];
  cap: { inh: bigint; prm: bigint; eff: bigint; bnd: bigint; amb: bigint };
  noNewPrivs: number;
  nproc: string;
}

export function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): string => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
    const nums = (name: string): number[] => field(name).split(/\s+/).filter(Boolean).map(Number);
    const cap = (name: string): bigint => BigInt(`0x${field(name) || '0'}`);
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    return {
      pid,
      ppid,
      cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '),
      uid: nums('Uid'),
      gid: nums('Gid'),
      groups: nums('Groups'),
      cap: { inh: cap('CapInh'), prm: cap('CapPrm'), eff: cap('CapEff'), bnd: cap('CapBnd'), amb: cap('CapAmb') },
      noNewPrivs: Number(field('NoNewPrivs')),
      nproc: /^Max processes\s+(\S+)\s+(\S+)/m.exec(limits)?.slice(1).join('/') ?? '',
    };
  } catch {
    return null;
  }
}

/** The process and every process below it. */
export function processTree(root: number): Proc[] {
  const all = readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map((n) => readProc(Number(n)))
    .filter((p): p is Proc => p !== null);
  const out: Proc[] = [];
  const add = (pid: number): void => {
    const p = all.find((x) => x.pid === pid);
    if (!p) return;
    out.push(p);
    for (const c of all.filter((x) => x.ppid === pid)) add(c.pid);
  };
  add(root);
  return out;
}

export function roleOf(p: Proc, daemonPid: number): string {
  if (p.pid === daemonPid) return 'smtp';
  // Workers N: the primary's SMTP workers (node:cluster forks of the same program)
  if (p.ppid === daemonPid && /bin\/asmtpd /.test(p.cmd)) return 'worker';
  if (/runner-process\.js|avenger-runner\/dist\/main\.js/.test(p.cmd)) return 'runner';
  if (/avenger-runner\/libexec\/spawner( |$)/.test(p.cmd)) return 'spawner';
  if (/netfacts\/process\.js/.test(p.cmd)) return 'netfacts';
  if (/syn-capture\.pl/.test(p.cmd)) return 'capture';
  return `other: ${p.cmd}`;
}

/** One process of a role below the daemon (throws when there is not exactly one). */
export function theProcess(daemonPid: number, role: string): Proc {
  const found = processTree(daemonPid).filter((p) => roleOf(p, daemonPid) === role);
  if (found.length !== 1) throw new Error(`${found.length} ${role} processes below ${daemonPid}`);
  return found[0]!;
}

export function dumpable(p: Proc): boolean | null {
  if (p.uid[1] === 0) return null;
  return statSync(`/proc/${p.pid}/fd`).uid === p.uid[1];
}

/** gdb is there (CI installs it) and may attach (root, or ptrace allowed). */
export function gdbAvailable(): string | null {
  if (process.getuid?.() !== 0) return "attaching gdb to the daemon's processes needs root";
  return spawnSync('gdb', ['--version'], { stdio: 'ignore' }).status === 0 ? null : 'gdb is not installed';
}

/**
 * Evaluate a C expression inside a running process (gdb attaches, calls, detaches); returns the
 * printed value (e.g. "-1", "3"). The process runs on afterwards.
 */
export function callInProcess(pid: number, expression: string): string {
  const out = execFileSync('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', `print ${expression}`], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = /^\$1 = (.*)$/m.exec(out);
  if (!m) throw new Error(`gdb printed no value for ${expression}: ${out.slice(-500)}`);
  return m[1]!.trim();
}

/** A C string literal of s (for callInProcess). */
export function cString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Run argv as uid:gid with no supplementary groups; exit status and output. */
export function runAs(
  uid: number,
  gid: number,
  argv: string[],
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...argv], {
    encoding: 'utf8',
    cwd: '/',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The pids of the given processes that listen on a TCP port (ss -ltnp). */
export function listeningPids(pids: number[]): number[] {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return pids.filter((pid) => new RegExp(`pid=${pid},`).test(out));
}

/** uid and gid of an account (getent). */
export function accountIds(name: string): { uid: number; gid: number } {
  const [, , uid, gid] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
