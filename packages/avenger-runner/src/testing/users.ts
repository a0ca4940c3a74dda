/*
 * testing/users — temporary Unix users and homes for the runner's tests (root only).
 *
 * PUBLIC
 *   createTempUser() → TempUser   a user with its own group plus one supplementary group, and a
 *                                 home under a fresh /tmp/asmtpd-runner-test-* directory
 *   TempUser.remove()             userdel/groupdel and remove the directory
 *   findProcessesInGroup(pgid)    live pids (from /proc) whose process group is pgid
 *   waitForEmptyGroup(pgid)       the same after up to 2 s for SIGKILLed processes to finish dying
 *   createSpoolDirectory(owner)   a spool directory owned by the SMTP process's stand-in
 *   TEST_ENV_NAMES, isRoot
 *
 * Names are random (art + 8 hex digits) so that suites can run in parallel; useradd and
 * groupadd are retried while another suite holds the passwd/group lock.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const isRoot = process.getuid?.() === 0;

export interface TempUser {
  name: string;
  uid: number;
  gid: number;
  /** [gid, supplementary group] */
  groups: number[];
  supplementaryGroup: string;
  supplementaryGid: number;
  /** Root-owned 0755 directory holding home (and anything else a test needs). */
  base: string;
  home: string;
  avengerDir: string;
  remove(): void;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function runWithRetry(command: string, args: string[]): void {
  for (let attempt = 0; ; attempt++) {
    try {
      execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch (err) {
      if (attempt >= 40) throw err;
      sleepMs(100 + Math.floor(Math.random() * 200)); // the passwd/group lock is probably busy
    }
  }
}

export function createTempUser(): TempUser {
  const tag = randomBytes(4).toString('hex');
  const name = `art${tag}`;
  const supplementaryGroup = `artg${tag}`;
  const base = mkdtempSync('/tmp/asmtpd-runner-test-');
  chmodSync(base, 0o755);
  const home = join(base, 'home');
  runWithRetry('groupadd', [supplementaryGroup]);
  runWithRetry('useradd', ['-M', '-d', home, '-s', '/usr/sbin/nologin', '-U', '-G', supplementaryGroup, name]);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  const supplementaryGid = Number(execFileSync('getent', ['group', supplementaryGroup]).toString().split(':')[2]);
  const avengerDir = join(home, '.avenger');
  mkdirSync(avengerDir, { recursive: true });
  chownSync(home, uid, gid);
  chownSync(avengerDir, uid, gid);
  chmodSync(home, 0o700);
  chmodSync(avengerDir, 0o755);
  return {
    name,
    uid,
    gid,
    groups: [gid, supplementaryGid],
    supplementaryGroup,
    supplementaryGid,
    base,
    home,
    avengerDir,
    remove() {
      try {
        runWithRetry('userdel', [name]);
      } finally {
        try {
          runWithRetry('groupdel', [supplementaryGroup]);
        } finally {
          rmSync(base, { recursive: true, force: true });
        }
      }
    },
  };
}

/** Pids of live (not zombie) processes whose process group id is pgid (/proc/PID/stat). */
export function findProcessesInGroup(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') found.push(Number(entry));
  }
  return found;
}

/** Live members of the group once SIGKILLed ones had up to timeoutMs to die (they exit asynchronously). */
export async function waitForEmptyGroup(pgid: number, timeoutMs = 2000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = findProcessesInGroup(pgid);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = findProcessesInGroup(pgid);
  }
  return left;
}

/** A spool directory owned by `owner` (the SMTP process's account), mode 0700, in a root-owned 0755 base. */
export function createSpoolDirectory(owner: TempUser): string {
  const spool = join(owner.base, 'spool');
  mkdirSync(spool, { mode: 0o700 });
  chownSync(spool, owner.uid, owner.gid);
  chmodSync(spool, 0o700);
  return spool;
}

/** Variable names the runner tests let requests set. */
export const TEST_ENV_NAMES = [
  'SENDER',
  'RECIPIENT',
  'MAIL_ERROR',
  'DEFAULT',
  'N',
  'CLIENT_PTR',
  'CLIENT_HELO',
  'ASMTPD_DNS',
];
