/**
 * The installed utilities (packages/asmtpd/tools/NAME) run as a real account, as a script of that
 * user runs them: setpriv to the user's uid and gid (no supplementary groups), in the user's home,
 * with the scripts' PATH (the tools directory first). Root only.
 *
 *   TOOLS                              the directory of the installed commands
 *   tool(user, name, args, {stdin?}) -> Promise<{status, stdout, stderr}>   one run, awaited
 *   shAs(user, script, args)           the same for `/bin/sh -c script sh args…` (pipelines, umask)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestUser } from './users.js';

export const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));
const PATH = `${TOOLS}:/usr/local/bin:/usr/bin:/bin`;

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runAsUser(u: TestUser, argv: string[], stdin = ''): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', ...argv], {
      cwd: u.home,
      env: { PATH, HOME: u.home, USER: u.name },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    p.stdin.end(stdin);
  });
}

export function tool(u: TestUser, name: string, args: string[], o: { stdin?: string } = {}): Promise<ToolResult> {
  return runAsUser(u, [`${TOOLS}/${name}`, ...args], o.stdin);
}

export function shAs(u: TestUser, script: string, args: string[] = []): Promise<ToolResult> {
  return runAsUser(u, ['/bin/sh', '-c', script, 'sh', ...args]);
}
