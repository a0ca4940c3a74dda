/**
 * Network namespaces for the SYN fingerprint tests (test/e2e/synfp-*.test.ts): client namespaces
 * joined by veth pairs to the root namespace (where the test daemon listens), directly or through
 * a router namespace, with their TCP/IP stacks tuned by sysctls and route attributes.
 *
 *   netnsUnavailable() -> null, or why namespaces cannot be used (not root, no `ip netns`)
 *   createNetLab() -> NetLab           names unique per lab: asyn<pid>x<n>-<name>, veths sy<…>
 *   lab.namespace(name) -> ns          a new namespace with lo up, no IPv6 DAD
 *   lab.link(a, b, {v4, v6}) -> Link   a veth pair between a (null = the root namespace) and b, in a
 *                                      subnet of its own: `a` gets .1 / ::1, `b` .2 / ::2; both up
 *   lab.route(ns, dest, via, extra?)   ip route add DEST via VIA [extra…] (ns null = root)
 *   lab.sysctl(ns, {key: value})       inside ns
 *   lab.ip(ns, args)                   any `ip` command (ns null = root)
 *   lab.run(ns, argv, {timeoutMs?})    a command inside ns (ip netns exec) -> {code, out, err}
 *   lab.close()                        deletes the namespaces (and with them every veth, and the
 *                                      root routes through them); also run at exit, and stale labs
 *                                      of dead test processes are removed when a lab is created
 *   freeSubnet() -> 0-511              a /24 of 198.18.0.0/15 no root route uses (also for user-tcp.ts)
 *   LINUX_DEFAULT_TCP_RMEM             Linux's default tcp_rmem, to give a namespace a stock stack
 *
 * Addresses: IPv4 subnets are /24s of 198.18.0.0/15 (RFC 2544 benchmarking) that no root route
 * uses yet, IPv6 /64s of a random ULA /48 per lab, so that parallel runs do not collide. Nothing here
 * sends a packet out of the machine: the only interfaces the root namespace gains are veths into
 * the lab's namespaces, and it forwards nothing (ip_forward is not touched).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';

export interface Link {
  /** interface names: in a (root or namespace) and in b */
  aDev: string;
  bDev: string;
  v4: { a: string; b: string; prefix: string };
  v6: { a: string; b: string; prefix: string };
}

export interface RunResult {
  code: number | null;
  out: string;
  err: string;
}

export interface NetLab {
  namespace(name: string): string;
  link(a: string | null, b: string): Link;
  route(ns: string | null, dest: string, via: string, extra?: readonly string[]): void;
  sysctl(ns: string, settings: Record<string, string | number>): void;
  ip(ns: string | null, args: readonly string[]): string;
  run(ns: string, argv: readonly string[], o?: { timeoutMs?: number }): Promise<RunResult>;
  close(): void;
}

const PREFIX = 'asyn';

function ipCmd(args: readonly string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || r.error?.message}`);
  return r.stdout;
}

export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `\`ip netns\` is not available: ${r.error?.message ?? r.stderr.trim()}`;
  const probe = `${PREFIX}${process.pid}probe`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces left by test processes that died before cleaning up. */
function removeStale(): void {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of r.stdout?.split('\n') ?? []) {
    const m = new RegExp(`^(${PREFIX}(\\d+)x\\d+-\\S+)`).exec(line);
    if (m && Number(m[2]) !== process.pid && !alive(Number(m[2]))) spawnSync('ip', ['netns', 'del', m[1]!]);
  }
}

/** A /24 of 198.18.0.0/15 (its index 0-511) that no route of the root namespace uses yet (nor `taken`). */
export function freeSubnet(taken: Set<number> = new Set()): number {
  const used = new Set<number>(taken);
  for (const m of ipCmd(['-4', 'route', 'show', 'root', '198.18.0.0/15']).matchAll(/^198\.(18|19)\.(\d+)\./gm)) {
    used.add((Number(m[1]) - 18) * 256 + Number(m[2]));
  }
  for (;;) {
    const s = randomInt(0, 512);
    if (!used.has(s)) {
      taken.add(s);
      return s;
    }
  }
}

let labCounter = 0;
const open = new Set<NetLab>();
process.on('exit', () => {
  for (const lab of open) lab.close();
});

export function createNetLab(): NetLab {
  removeStale();
  const n = labCounter++;
  const base = `${PREFIX}${process.pid}x${n}`;
  // veth names: at most 15 characters
  const devBase = `sy${process.pid.toString(36)}${n.toString(36)}`;
  const namespaces: string[] = [];
  const ula = `fd${randomInt(0, 256).toString(16).padStart(2, '0')}:${randomInt(0, 65536).toString(16)}:${randomInt(0, 65536).toString(16)}`;
  let links = 0;
  const subnets = new Set<number>();

  const lab: NetLab = {
    namespace(name) {
      const ns = `${base}-${name}`;
      ipCmd(['netns', 'add', ns]);
      namespaces.push(ns);
      ipCmd(['-n', ns, 'link', 'set', 'lo', 'up']);
      lab.sysctl(ns, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
      return ns;
    },
    link(a, b) {
      const i = links++;
      const aDev = `${devBase}l${i}a`,
        bDev = `${devBase}l${i}b`;
      const s = freeSubnet(subnets);
      const v4prefix = `198.${18 + (s >> 8)}.${s & 0xff}`;
      const v6prefix = `${ula}:${(i + 1).toString(16)}`;
      const v4 = { a: `${v4prefix}.1`, b: `${v4prefix}.2`, prefix: `${v4prefix}.0/24` };
      const v6 = { a: `${v6prefix}::1`, b: `${v6prefix}::2`, prefix: `${v6prefix}::/64` };
      // created inside b (a namespace of ours), the a end moved to a: if anything fails, deleting b
      // deletes the pair
      ipCmd(['-n', b, 'link', 'add', bDev, 'type', 'veth', 'peer', 'name', aDev, 'netns', a ?? String(process.pid)]);
      const at = (ns: string | null): string[] => (ns ? ['-n', ns] : []);
      // no duplicate address detection on a's end either (a tentative link-local address delays
      // neighbour discovery by a second): our namespaces have it off by default, the root does not
      if (!a) writeFileSync(`/proc/sys/net/ipv6/conf/${aDev}/accept_dad`, '0');
      ipCmd([...at(a), 'addr', 'add', `${v4.a}/24`, 'dev', aDev]);
      ipCmd([...at(a), 'addr', 'add', `${v6.a}/64`, 'dev', aDev, 'nodad']);
      ipCmd([...at(a), 'link', 'set', aDev, 'up']);
      ipCmd(['-n', b, 'addr', 'add', `${v4.b}/24`, 'dev', bDev]);
      ipCmd(['-n', b, 'addr', 'add', `${v6.b}/64`, 'dev', bDev, 'nodad']);
      ipCmd(['-n', b, 'link', 'set', bDev, 'up']);
      return { aDev, bDev, v4, v6 };
    },
    route(ns, dest, via, extra = []) {
      ipCmd([
        ...(ns ? ['-n', ns] : []),
        ...(dest.includes(':') ? ['-6'] : []),
        'route',
        'add',
        dest,
        'via',
        via,
        ...extra,
      ]);
    },
    sysctl(ns, settings) {
      const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
      const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`sysctl ${args.join(' ')} in ${ns}: ${r.stderr.trim() || r.error?.message}`);
    },
    ip(ns, args) {
      return ipCmd([...(ns ? ['-n', ns] : []), ...args]);
    },
    run(ns, argv, o = {}) {
      return new Promise((resolve) => {
        const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '',
          err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 20_000);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out, err });
        });
      });
    },
    close() {
      for (const ns of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', ns]);
      open.delete(lab);
    },
  };
  open.add(lab);
  return lab;
}

/** A sysctl's value in a namespace (null: the root namespace), as text without the newline. */
export function readSysctl(ns: string | null, key: string): string {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  const r = ns
    ? spawnSync('ip', ['netns', 'exec', ns, 'cat', path], { encoding: 'utf8' })
    : spawnSync('cat', [path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot read ${key}${ns ? ` in ${ns}` : ''}: ${r.stderr.trim()}`);
  return r.stdout.trim().replace(/\s+/g, ' ');
}

/** Linux's default net.ipv4.tcp_rmem (Documentation/networking/ip-sysctl.rst); a new namespace copies the root's instead */
export const LINUX_DEFAULT_TCP_RMEM = '4096 131072 6291456';

/** What decides the SYN a Linux client sends on one route. */
export interface LinuxStack {
  family: 4 | 6;
  /** the route's MTU: the interface's, or the route's `mtu` */
  mtu: number;
  /** the route's `advmss`, when set */
  advmss?: number;
  /** the route's `window` (the window clamp), when set */
  windowClamp?: number;
  /** initial TTL / hop limit: net.ipv4.ip_default_ttl, net.ipv6.conf.DEV.hop_limit */
  ttl: number;
  /** routers between the client and us (each takes one off the TTL) */
  routers: number;
  timestamps: boolean;
  sack: boolean;
  windowScaling: boolean;
  /** net.ipv4.tcp_rmem */
  rmem: [number, number, number];
  /** net.core.rmem_max */
  rmemMax: number;
}

/** The settings of a namespace's stack (null: the root namespace) for a connection through DEV. */
export function readLinuxStack(
  ns: string | null,
  family: 4 | 6,
  dev: string,
  route: Partial<LinuxStack> = {},
): LinuxStack {
  const n = (key: string): number => Number(readSysctl(ns, key));
  const mtuText = ns
    ? spawnSync('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${dev}/mtu`], { encoding: 'utf8' }).stdout
    : spawnSync('cat', [`/sys/class/net/${dev}/mtu`], { encoding: 'utf8' }).stdout;
  const rmem = readSysctl(ns, 'net.ipv4.tcp_rmem').split(' ').map(Number) as [number, number, number];
  return {
    family,
    mtu: Number(mtuText.trim()),
    ttl: family === 4 ? n('net.ipv4.ip_default_ttl') : n(`net.ipv6.conf.${dev}.hop_limit`),
    routers: 0,
    timestamps: n('net.ipv4.tcp_timestamps') !== 0,
    sack: n('net.ipv4.tcp_sack') !== 0,
    windowScaling: n('net.ipv4.tcp_window_scaling') !== 0,
    rmem,
    rmemMax: n('net.core.rmem_max'),
    ...route,
  };
}

/**
 * The CLIENT_SYNFP a Linux client with these settings produces, as the kernel builds its SYN
 * (net/ipv4/tcp_output.c tcp_connect_init, tcp_select_initial_window, tcp_options_write):
 *   MSS      the route's advmss, else MTU - 40 (IPv4, at most 65495) or MTU - 60 (IPv6)
 *   options  M, then S,T (SACK and timestamps) | N,N,T (timestamps) | N,N,S (SACK), then N,W (scaling)
 *   window   space = tcp_rmem[1] / 2 (Linux 4.19-6.x: tcp_adv_win_scale 1, then the default scaling
 *            ratio 1/2), at most the route's window; rounded down to a multiple of the MSS when
 *            larger than it; at most 65535
 *   scale    log2(max(space, tcp_rmem[2], rmem_max), at most the window clamp) - 15, 0-14
 *   TTL      the initial TTL less one per router; DF always set (ip_no_pmtu_disc 0; IPv6)
 */
export function linuxSynFingerprint(s: LinuxStack): string {
  const mss =
    s.advmss ?? (s.family === 4 ? Math.min(Math.max(s.mtu - 40, 256), 65495) : s.mtu - 60 > 65515 ? 65535 : s.mtu - 60);
  const options = [`M${mss}`];
  if (s.timestamps) options.push(...(s.sack ? ['S', 'T'] : ['N', 'N', 'T']));
  else if (s.sack) options.push('N', 'N', 'S');
  const clamp = s.windowClamp ?? 65535 * 2 ** 14;
  let space = Math.min(clamp, Math.floor(s.rmem[1] / 2));
  if (space > mss) space = Math.floor(space / mss) * mss;
  const window = Math.min(space, 65535);
  if (s.windowScaling) {
    const top = Math.min(Math.max(space, s.rmem[2], s.rmemMax), clamp);
    options.push('N', `W${Math.max(0, Math.min(14, Math.floor(Math.log2(top)) - 15))}`);
  }
  const size = (s.family === 4 ? 20 : 40) + 20 + 4 + (s.timestamps ? 12 : s.sack ? 4 : 0) + (s.windowScaling ? 4 : 0);
  return `${window}:${s.ttl - s.routers}:1:${size}:${options.join(',')}`;
}
