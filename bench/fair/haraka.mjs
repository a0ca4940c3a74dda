// Haraka 3.3.4 for bench/fair: an instance directory made for the run and the server started in
// its cgroup. Haraka is installed by bench/fair/setup.sh into bench/fair/haraka/ with npm (its
// own package.json and lockfile, outside the pnpm workspace: it needs npm overrides).
//
// Configuration (only what the run needs; everything else Haraka's defaults):
//   smtp.ini        listen 127.0.0.1:PORT, nodes = cpus (node:cluster, one worker per CPU),
//                   user/group nobody/nogroup (the workers drop root after listening)
//   plugins         bench_script (below), rcpt_to.in_host_list, queue/smtp_forward
//   host_list       relay.test (the recipient domain of the plain variants)
//   smtp_forward    host 127.0.0.1, port = the sink
//   log.ini         Haraka's default level (info), to a file, like the other two servers' logs
// bench_script: for a recipient in SCRIPT_DOMAIN it spawns `/bin/sh SCRIPT` (as the worker's
// user, nobody) with the recipient in the environment, never in shell text, and accepts the
// recipient when the script exits 0 (a temporary failure otherwise); other domains: no opinion.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, waitGreeting } from '../smtp/lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const HARAKA_DIR = join(here, 'haraka');
const HARAKA_BIN = join(HARAKA_DIR, 'node_modules', 'Haraka', 'bin', 'haraka');

/** The installed Haraka's version, or an error saying how to install it. */
export function harakaVersion() {
  const pkg = join(HARAKA_DIR, 'node_modules', 'Haraka', 'package.json');
  if (!existsSync(pkg)) throw new Error(`Haraka is not installed: run bench/fair/setup.sh (${pkg} missing)`);
  return JSON.parse(readFileSync(pkg, 'utf8')).version;
}

const plugin = (domain, script) => `'use strict'
// bench/fair: a shell spawned per recipient of ${domain} (written by bench/fair/haraka.mjs)
const { spawn } = require('node:child_process')
const addr = (a) => String((typeof a?.address === 'function' ? a.address() : a?.address) ?? '')
exports.register = function () {
    this.register_hook('rcpt', 'script_rcpt')
}
exports.script_rcpt = function (next, connection, params) {
    const rcpt = params[0]
    if (String(rcpt.host).toLowerCase() !== ${JSON.stringify(domain)}) return next()
    let done = false
    const finish = (code, msg) => {
        if (!done) (done = true), next(code, msg)
    }
    const p = spawn('/bin/sh', [${JSON.stringify(script)}], {
        stdio: 'ignore',
        env: { PATH: '/usr/bin:/bin', RECIPIENT: addr(rcpt), SENDER: addr(connection.transaction?.mail_from) },
    })
    p.on('error', () => finish(DENYSOFT, 'script failed'))
    p.on('exit', (code) => (code === 0 ? finish(OK) : finish(DENYSOFT, 'script said no')))
}
`;

/** Starts Haraka on a free port forwarding to the sink; `script` = {domain, path}. */
export async function startHaraka({ port, sinkPort, script, group }) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-fair-haraka-'));
  chmodSync(dir, 0o755);
  const init = spawnSync(process.execPath, [HARAKA_BIN, '-i', dir], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`haraka -i: ${init.stderr}`);
  const cfg = (f, text) => writeFileSync(join(dir, 'config', f), text);
  cfg('smtp.ini', `listen=127.0.0.1:${port}\nnodes=cpus\nuser=nobody\ngroup=nogroup\n`);
  cfg('plugins', 'bench_script\nrcpt_to.in_host_list\nqueue/smtp_forward\n');
  cfg('host_list', 'relay.test\n');
  cfg('smtp_forward.ini', `host=127.0.0.1\nport=${sinkPort}\n`);
  cfg('me', 'bench.haraka.test\n');
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  writeFileSync(join(dir, 'plugins', 'bench_script.js'), plugin(script.domain, script.path));
  const logFile = join(tmpdir(), 'bench-fair-haraka.log');
  const fd = openSync(logFile, 'w');
  const [cmd, args] = group.wrap(process.execPath, [HARAKA_BIN, '-c', dir]);
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_ENV: 'production' } });
  closeSync(fd);
  try {
    await waitGreeting(port, 30_000, p);
    await sleep(1500); // every worker listening (the first greeting may come from one)
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`haraka did not start: ${e.message}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  return {
    name: 'haraka',
    port,
    pid: p.pid,
    logFile,
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      for (const pid of group.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
