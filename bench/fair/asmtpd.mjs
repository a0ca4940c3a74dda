// asmtpd for bench/fair: `asmtpd -d -f CONF` of this checkout, started inside its cgroup (the
// daemon, its SMTP workers, the script runner and its spawner, the network-facts process and
// every script are counted together), relaying to the sink, with the facts of production:
//   DNSResolver system with no DNSServer: the machine's resolver, which in the run's mount
//   namespace is the run's unbound (as docs/deploy.md sets a host up); reverse DNS (PTR +
//   forward confirmation), RBL bl1/bl2/bl3.bench.test (bl3 lists the client, score 0.5 <
//   RBLThreshold 1), SPF of MAIL FROM and HELO; SMTPCB no (it would call the sender's MX);
//   SynFP as by default (on as root) unless --synfp no.
// The script variant's recipient is a real account (made by run.mjs) of LocalDomain
// example.test whose ~/.avenger/rcpt is `accept`: the runner runs it as that user.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, sleep, waitGreeting } from '../smtp/lib.mjs';

/** name: target name; workers: undefined (the default) or N; extra: config lines. */
export async function startAsmtpdServer({ name, port, sinkPort, workers, synfp, extra = [], group }) {
  const bin = join(root, 'packages', 'asmtpd', 'bin', 'asmtpd');
  if (!existsSync(bin)) throw new Error(`${bin} missing: pnpm build`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-fair-asmtpd-'));
  chmodSync(dir, 0o755); // the SMTP processes drop root and must reach DBDir
  const conf = join(dir, 'asmtpd.conf');
  writeFileSync(
    conf,
    [
      `SMTPPort ${port}`,
      'BindAddr 127.0.0.1',
      'Hostname bench.asmtpd.test',
      `DBDir ${join(dir, 'db')}`,
      'LocalDomain example.test',
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${sinkPort}`,
      'MaxClients 1000',
      'MaxClientsPerIP 1000',
      'DNSResolver system',
      'RBL bl1.bench.test',
      'RBL bl2.bench.test',
      'RBL bl3.bench.test 0.5',
      'RBLThreshold 1',
      'SMTPCB no',
      ...(synfp === undefined ? [] : [`SynFP ${synfp}`]),
      ...(workers === undefined ? [] : [`Workers ${workers}`]),
      ...extra,
      '',
    ].join('\n'),
  );
  const logFile = join(tmpdir(), `bench-fair-${name}.log`);
  const fd = openSync(logFile, 'w');
  const [cmd, args] = group.wrap(process.execPath, [bin, '-d', '-f', conf]);
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_ENV: 'production' } });
  closeSync(fd);
  try {
    await waitGreeting(port, 30_000, p);
    await sleep(1000); // every worker up (the first greeting may come from one)
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`${name} did not start: ${e.message}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  return {
    name,
    port,
    pid: p.pid,
    logFile,
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      await sleep(200);
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
