/**
 * A routed chain of network namespaces for the NetPath tests (test/e2e/netpath*.test.ts):
 *
 *   server ── r2 ── r1 ── client
 *   10.77.1.2  .1.1 / .2.1   .2.2 / .3.1   10.77.3.2      (fd77:N::… the same for IPv6)
 *
 * The server traces towards the client: TTL 1 expires at r2, which answers from 10.77.1.1 (its
 * address towards the server), TTL 2 at r1 (10.77.2.2), TTL 3 reaches the client (10.77.3.2).
 * Routers forward IPv4 and IPv6; IPv6 addresses, link-local ones included, skip duplicate address
 * detection (accept_dad 0, nodad) so the lab is usable at once. Nothing is done in the root namespace: no route or address of the host
 * changes, no packet leaves the lab.
 *
 *   routeLabUnavailable() -> null, or why the lab cannot be built (not root, no `ip netns`)
 *   createRouteLab({silent?, rateLimit?}) -> RouteLab
 *     silent: routers that send no ICMP errors (time exceeded): their per-peer ICMP rate limit
 *       (net.ipv4.icmp_ratelimit, net.ipv6.icmp.ratelimit) set so high that not even the first
 *       message of a peer goes out — no iptables/nft needed
 *     rateLimit: false (default) turns the routers' ICMP rate limits off, so that many traces in
 *       a row are all answered; true keeps the kernel's (1/s per peer after a burst of 6)
 *     silentClient: the client ignores echo requests (net.ipv4.icmp_echo_ignore_all, net.ipv6.icmp.echo_ignore_all)
 *   lab.run(ns, argv, timeoutMs?) -> Promise<{code, out, err}>   a command inside a namespace (ip netns exec)
 *   lab.close()   deletes the namespaces (and with them every veth); also run at process exit
 *
 * Namespace names are unique per lab: asmnp<pid>x<counter>-{s,r2,r1,c}.
 */
import { spawn, spawnSync } from 'node:child_process';

export const LAB = {
  server: { v4: '10.77.1.2', v6: 'fd77:1::2' },
  r2: { v4: '10.77.1.1', v6: 'fd77:1::1' },
  r1: { v4: '10.77.2.2', v6: 'fd77:2::2' },
  client: { v4: '10.77.3.2', v6: 'fd77:3::2' },
} as const;

export type LabNode = 'server' | 'r2' | 'r1' | 'client';

export interface RouteLab {
  ns: Record<LabNode, string>;
  run(
    node: LabNode,
    argv: readonly string[],
    timeoutMs?: number,
  ): Promise<{ code: number | null; out: string; err: string }>;
  close(): void;
}

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

function sysctl(ns: string, settings: Record<string, string | number>): void {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sysctl ${args.join(' ')} in ${ns}: ${r.stderr || r.error?.message}`);
}

export function routeLabUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'the NetPath lab needs root (network namespaces, raw sockets)';
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `\`ip netns\` is not available: ${r.error?.message ?? r.stderr.trim()}`;
  const probe = `asmnp${process.pid}probe`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

let counter = 0;
const open = new Set<RouteLab>();
process.on('exit', () => {
  for (const lab of open) lab.close();
});

export function createRouteLab(
  o: { silent?: ('r1' | 'r2')[]; rateLimit?: boolean; silentClient?: boolean } = {},
): RouteLab {
  const base = `asmnp${process.pid}x${counter++}`;
  const ns: Record<LabNode, string> = { server: `${base}-s`, r2: `${base}-r2`, r1: `${base}-r1`, client: `${base}-c` };
  const created: string[] = [];
  const lab: RouteLab = {
    ns,
    run(node, argv, timeoutMs = 20_000) {
      return new Promise((resolve) => {
        const p = spawn('ip', ['netns', 'exec', ns[node], ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '',
          err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out, err });
        });
      });
    },
    close() {
      for (const n of created.splice(0).reverse()) spawnSync('ip', ['netns', 'del', n]);
      open.delete(lab);
    },
  };
  open.add(lab);
  try {
    for (const n of Object.values(ns)) {
      ip(['netns', 'add', n]);
      created.push(n);
      ip(['-n', n, 'link', 'set', 'lo', 'up']);
      // no duplicate address detection on the interfaces to come, link-local addresses included:
      // a tentative link-local address delays neighbour discovery by a second
      sysctl(n, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    }
    // veth pairs created straight inside the namespaces: no interface ever appears in the root one
    ip(['-n', ns.server, 'link', 'add', 's0', 'type', 'veth', 'peer', 'name', 'a0', 'netns', ns.r2]);
    ip(['-n', ns.r2, 'link', 'add', 'a1', 'type', 'veth', 'peer', 'name', 'b0', 'netns', ns.r1]);
    ip(['-n', ns.r1, 'link', 'add', 'b1', 'type', 'veth', 'peer', 'name', 'c0', 'netns', ns.client]);
    const addr: [LabNode, string, string, string][] = [
      ['server', 's0', '10.77.1.2/24', 'fd77:1::2/64'],
      ['r2', 'a0', '10.77.1.1/24', 'fd77:1::1/64'],
      ['r2', 'a1', '10.77.2.1/24', 'fd77:2::1/64'],
      ['r1', 'b0', '10.77.2.2/24', 'fd77:2::2/64'],
      ['r1', 'b1', '10.77.3.1/24', 'fd77:3::1/64'],
      ['client', 'c0', '10.77.3.2/24', 'fd77:3::2/64'],
    ];
    for (const [node, dev, v4, v6] of addr) {
      ip(['-n', ns[node], 'addr', 'add', v4, 'dev', dev]);
      ip(['-n', ns[node], 'addr', 'add', v6, 'dev', dev, 'nodad']);
      ip(['-n', ns[node], 'link', 'set', dev, 'up']);
    }
    ip(['-n', ns.server, 'route', 'add', 'default', 'via', '10.77.1.1']);
    ip(['-n', ns.server, '-6', 'route', 'add', 'default', 'via', 'fd77:1::1']);
    ip(['-n', ns.r2, 'route', 'add', '10.77.3.0/24', 'via', '10.77.2.2']);
    ip(['-n', ns.r2, '-6', 'route', 'add', 'fd77:3::/64', 'via', 'fd77:2::2']);
    ip(['-n', ns.r1, 'route', 'add', 'default', 'via', '10.77.2.1']);
    ip(['-n', ns.r1, '-6', 'route', 'add', 'default', 'via', 'fd77:2::1']);
    ip(['-n', ns.client, 'route', 'add', 'default', 'via', '10.77.3.1']);
    ip(['-n', ns.client, '-6', 'route', 'add', 'default', 'via', 'fd77:3::1']);
    for (const r of ['r1', 'r2'] as const) {
      const silent = o.silent?.includes(r) ?? false;
      // a per-peer limit of ~35 minutes: the first ICMP error to a peer is already over it
      const limit = silent ? 2_147_483 : o.rateLimit ? 1000 : 0;
      sysctl(ns[r], {
        'net.ipv4.ip_forward': 1,
        'net.ipv6.conf.all.forwarding': 1,
        'net.ipv4.icmp_ratelimit': limit,
        'net.ipv6.icmp.ratelimit': limit,
      });
    }
    if (o.silentClient) sysctl(ns.client, { 'net.ipv4.icmp_echo_ignore_all': 1, 'net.ipv6.icmp.echo_ignore_all': 1 });
  } catch (e) {
    lab.close();
    throw e;
  }
  return lab;
}
