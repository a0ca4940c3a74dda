/**
 * run-tool.ts — run an installed utility (packages/asmtpd/tools/NAME, docs/utilities.md) as a real
 * user, as a script would: `setpriv --reuid --regid --init-groups`, a clean environment with the
 * utilities first on PATH (as the runner gives scripts), HOME and USER of the user.
 *
 *   TOOLS                                   the directory of the installed commands
 *   runToolAs(user, argv, {input?, stdinFile?, env?, cwd?}) -> Promise<{code, signal, stdout, stderr}>
 *     argv[0] is a command name (found on that PATH) or a path; stdin is `input` through a pipe,
 *     or the file `stdinFile` opened read-only (a seekable stdin, as avenger.local gives scripts)
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));

export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export function runToolAs(
  u: { name: string; uid: number; gid: number; home: string },
  argv: string[],
  o: { input?: string | Buffer; stdinFile?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<ToolRun> {
  const stdinFd = o.stdinFile === undefined ? null : openSync(o.stdinFile, 'r');
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', '--', ...argv], {
      cwd: o.cwd ?? u.home,
      env: { PATH: `${TOOLS}:/usr/local/bin:/usr/bin:/bin`, HOME: u.home, USER: u.name, ...o.env },
      stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe'],
    });
    if (stdinFd !== null) closeSync(stdinFd);
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(o.input ?? '');
    }
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}
