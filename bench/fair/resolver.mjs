// The DNS of bench/fair, all on loopback (no query leaves the machine):
//   - an authoritative zone: bench/smtp/dns-child.mjs, zone 'facts' (PTR + A of 127.0.0.1 →
//     client.bench.test, SPF TXT of bench-source.test and bench-client.test, DNSBLs
//     bl1/bl2.bench.test not listing, bl3.bench.test listing with A + TXT; NXDOMAIN and NODATA
//     carry an SOA, so negative answers may be cached), records with the run's TTL;
//   - unbound (Debian's), a real caching resolver, forwarding EVERY name (".") to that zone's
//     server, on ADDR:53 — what every server of the run resolves through (/etc/resolv.conf in the
//     run's mount namespace, see run.mjs). No DNSSEC (module iterator only), no root hints used,
//     the RFC 6761/6303 local zones unbound answers itself by default switched off for the names
//     the zone serves (test., 127.in-addr.arpa.).
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { root, sleep } from '../smtp/lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** The authoritative zone in a child process (dns-child.mjs), joined to `group`. */
export async function startZone({ ttl, group }) {
  const built = join(root, 'test', 'dist', 'support', 'dns-server.js');
  if (!existsSync(built)) throw new Error(`${built} missing: run pnpm build`);
  const child = fork(
    join(here, '..', 'smtp', 'dns-child.mjs'),
    [JSON.stringify([{ name: 'zone', zone: 'facts', ttl }])],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  group.add(child.pid);
  const ready = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`dns-child exited with ${code}`)));
  });
  let nextId = 1;
  const waiting = new Map();
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    if (w) (waiting.delete(m.id), w(m.stats.zone));
  });
  return {
    udp: ready.zone.udp,
    /** queries the zone answered since the previous call: {total, byType} */
    stats: () =>
      new Promise((resolve) => {
        const id = nextId++;
        waiting.set(id, resolve);
        child.send({ cmd: 'stats', id });
      }),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.send({ cmd: 'exit' });
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

function unboundConf(dir, addr, forwardTo) {
  const [fHost, fPort] = forwardTo.split(':');
  return `# written by bench/fair/resolver.mjs
server:
  interface: ${addr}
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: ${process.env.UB_VERBOSITY ?? 0}
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: no
  local-zone: "test." nodefault
  local-zone: "127.in-addr.arpa." nodefault
forward-zone:
  name: "."
  forward-addr: ${fHost}@${fPort}
`;
}

/** unbound on addr:53, forwarding everything to forwardTo ('HOST:PORT'), joined to `group`. */
export async function startUnbound({ addr, forwardTo, group }) {
  const bin = '/usr/sbin/unbound';
  if (!existsSync(bin)) throw new Error('unbound not found: apt-get install --no-install-recommends unbound');
  const dir = mkdtempSync(join(tmpdir(), 'bench-fair-unbound-'));
  chmodSync(dir, 0o755);
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, unboundConf(dir, addr, forwardTo));
  const check = spawnSync('/usr/sbin/unbound-checkconf', [conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`unbound-checkconf: ${check.stdout}${check.stderr}`);
  const [cmd, args] = group.wrap(bin, ['-d', '-c', conf]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([addr]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const names = await r.resolvePtr('1.0.0.127.in-addr.arpa'); // a query (reverse() reads /etc/hosts)
      if (!names.includes('client.bench.test')) throw new Error(`PTR 127.0.0.1 = ${names}`);
      break;
    } catch (e) {
      if (p.exitCode !== null) throw new Error(`unbound exited with ${p.exitCode} (is ${addr}:53 taken?)`);
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`unbound on ${addr}:53 does not answer: ${e.message}`);
      }
      await sleep(100);
    }
  }
  return {
    addr,
    pid: p.pid,
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((res) => p.once('exit', res)), sleep(3000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
