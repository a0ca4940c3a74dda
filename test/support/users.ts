/**
 * Real Unix accounts for policy tests (root only): created with useradd, homes under /tmp,
 * removed with userdel at the end. Names are unique per run so suites can run in parallel.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, chmodSync, chownSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export function canCreateUsers(): string | null {
  if (process.getuid?.() !== 0) return 'creating test accounts needs root';
  try {
    execFileSync('useradd', ['--help'], { stdio: 'ignore' });
  } catch (e) {
    if ((e as { status?: number }).status === undefined) return 'useradd is not installed';
  }
  return null;
}

export function createUser(prefix: string): TestUser {
  const name = `at${prefix.slice(0, 8)}${randomBytes(3).toString('hex')}`;
  const home = join(tmpdir(), `asmtpd-home-${name}`);
  execFileSync('useradd', ['--home-dir', home, '--create-home', '--shell', '/bin/sh', '--user-group', name], {
    stdio: 'pipe',
  });
  chmodSync(home, 0o755);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  return { name, uid, gid, home };
}

export function removeUser(u: TestUser): void {
  try {
    execFileSync('pkill', ['-KILL', '-u', u.name], { stdio: 'ignore' });
  } catch {
    /* no processes left: fine */
  }
  try {
    execFileSync('userdel', ['--remove', u.name], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  rmSync(u.home, { recursive: true, force: true });
}

/** Write ~/.avenger/NAME as the user (owner uid, mode 0755 unless given). */
export function writeScript(
  u: { uid: number; gid: number; home: string },
  name: string,
  body: string,
  mode = 0o755,
): string {
  const dir = join(u.home, '.avenger');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownSync(dir, u.uid, u.gid);
  chmodSync(dir, 0o755);
  const path = join(dir, name);
  writeFileSync(path, body.startsWith('#!') ? body : `#!/bin/sh\n${body}\n`);
  chownSync(path, u.uid, u.gid);
  chmodSync(path, mode);
  return path;
}

/** A passwd(5) line for a test account (for a PasswdFile listing the test users). */
export function passwdLine(u: { name: string; uid: number; gid: number; home: string }): string {
  return `${u.name}:x:${u.uid}:${u.gid}::${u.home}:/bin/sh\n`;
}

/** An EtcDir for a test daemon (root's, mode 755) holding a PasswdFile that lists `users`. */
export function etcWithPasswd(users: readonly TestUser[]): { etc: string; passwd: string } {
  const etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, users.map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  return { etc, passwd };
}
