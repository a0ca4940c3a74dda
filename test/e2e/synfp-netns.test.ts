/**
 * SYN fingerprints of real connections from network namespaces (issue 6). The daemon listens in
 * the root namespace on the host ends of two veth pairs:
 *
 *   root (daemon) ── tuned                 a client whose stack each case tunes: MSS (route advmss,
 *                                          route mtu), window (tcp_rmem), timestamps, SACK, window
 *                                          scaling, TTL (ip_default_ttl, IPv6 hop_limit)
 *   root (daemon) ── router ── far         a client one router away: its TTL arrives one lower
 *
 * Each connection's CLIENT_SYNFP is what the kernel must send with those settings (computed from
 * the namespace's sysctls, see support/netns.ts linuxSynFingerprint), CLIENT_SYNOS the fixture
 * SynFPDB's line for it, CLIENT_NETHOPS the distance: 0 direct, 1 through the router (from the
 * matched line, or from the TTL alone when no line matches).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, readEnv } from '../support/facts.js';
import { nsSmtpClientArgv } from '../support/ns-smtp-client.js';
import {
  createNetLab,
  linuxSynFingerprint,
  netnsUnavailable,
  readLinuxStack,
  readSysctl,
  type LinuxStack,
  type Link,
  type NetLab,
} from '../support/netns.js';

const unavailable = canCreateUsers() ?? netnsUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

interface Case {
  tag: string;
  ns: 'tuned' | 'far';
  family: 4 | 6;
  /** sysctls set in the namespace for this case (the others are back at their baseline) */
  sysctls?: Record<string, string | number>;
  /** attributes of the route to the daemon's address */
  route?: string[];
  /** what those change in the stack's settings */
  stack: Partial<LinuxStack>;
  /** the fixture line's OS description; null: no line for it (CLIENT_SYNOS unset) */
  os: string | null;
  hops: number;
}

const TUNABLE = [
  'net.ipv4.tcp_timestamps',
  'net.ipv4.tcp_sack',
  'net.ipv4.tcp_window_scaling',
  'net.ipv4.ip_default_ttl',
  'net.ipv4.tcp_rmem',
];

const CASES: Case[] = [
  { tag: 'base', ns: 'tuned', family: 4, stack: {}, os: 'Fixture baseline', hops: 0 },
  {
    tag: 'mss',
    ns: 'tuned',
    family: 4,
    route: ['advmss', '1200'],
    stack: { advmss: 1200 },
    os: 'Fixture advmss 1200',
    hops: 0,
  },
  { tag: 'mtu', ns: 'tuned', family: 4, route: ['mtu', '1280'], stack: { mtu: 1280 }, os: 'Fixture mtu 1280', hops: 0 },
  {
    tag: 'nots',
    ns: 'tuned',
    family: 4,
    sysctls: { 'net.ipv4.tcp_timestamps': 0 },
    stack: { timestamps: false },
    os: 'Fixture no timestamps',
    hops: 0,
  },
  {
    tag: 'bare',
    ns: 'tuned',
    family: 4,
    sysctls: { 'net.ipv4.tcp_timestamps': 0, 'net.ipv4.tcp_sack': 0, 'net.ipv4.tcp_window_scaling': 0 },
    stack: { timestamps: false, sack: false, windowScaling: false },
    os: 'Fixture no options but MSS',
    hops: 0,
  },
  {
    tag: 'win',
    ns: 'tuned',
    family: 4,
    sysctls: { 'net.ipv4.tcp_rmem': '4096 20000 1048576' },
    stack: { rmem: [4096, 20000, 1048576] },
    os: 'Fixture small window',
    hops: 0,
  },
  {
    tag: 'ttl',
    ns: 'tuned',
    family: 4,
    sysctls: { 'net.ipv4.ip_default_ttl': 100 },
    route: ['advmss', '1000'],
    stack: { ttl: 100, advmss: 1000 },
    os: 'Fixture TTL 100',
    hops: 0,
  },
  {
    tag: 'six',
    ns: 'tuned',
    family: 6,
    sysctls: { 'net.ipv4.tcp_sack': 0 },
    route: ['advmss', '1300'],
    stack: { sack: false, advmss: 1300 },
    os: 'Fixture IPv6',
    hops: 0,
  },
  { tag: 'far4', ns: 'far', family: 4, stack: { routers: 1 }, os: 'Fixture behind a router', hops: 1 },
  { tag: 'far6', ns: 'far', family: 6, stack: { routers: 1 }, os: null, hops: 1 },
];

let lab: NetLab;
let ns: { tuned: string; router: string; far: string };
let direct: Link, toRouter: Link, beyond: Link;
let u: TestUser;
let etc: string;
let d: Daemon;
const base: Record<string, Record<string, string>> = {};
const expected = new Map<string, string>();

function daemonAddress(c: Case): string {
  const link = c.ns === 'tuned' ? direct : toRouter;
  return c.family === 4 ? link.v4.a : link.v6.a;
}

function clientDev(c: Case): string {
  return c.ns === 'tuned' ? direct.bDev : beyond.bDev;
}

/** The stack a case's connection is made with, from the namespace's own baseline settings. */
function caseStack(c: Case): LinuxStack {
  return { ...readLinuxStack(ns[c.ns], c.family, clientDev(c)), ...c.stack };
}

function applyCase(c: Case): void {
  const target = ns[c.ns];
  lab.sysctl(target, { ...base[c.ns], ...(c.sysctls ?? {}) });
  const addr = daemonAddress(c);
  const host = c.family === 4 ? `${addr}/32` : `${addr}/128`;
  const via = c.ns === 'tuned' ? [] : ['via', c.family === 4 ? beyond.v4.a : beyond.v6.a];
  lab.ip(target, [
    ...(c.family === 6 ? ['-6'] : []),
    'route',
    'replace',
    host,
    ...via,
    'dev',
    clientDev(c),
    ...(c.route ?? []),
  ]);
}

before(async () => {
  if (unavailable) return;
  lab = createNetLab();
  ns = { tuned: lab.namespace('tuned'), router: lab.namespace('router'), far: lab.namespace('far') };
  direct = lab.link(null, ns.tuned);
  toRouter = lab.link(null, ns.router);
  beyond = lab.link(ns.router, ns.far);
  lab.sysctl(ns.router, { 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 });
  lab.route(null, beyond.v4.prefix, toRouter.v4.b);
  lab.route(null, beyond.v6.prefix, toRouter.v6.b);
  lab.route(ns.far, 'default', beyond.v4.a);
  lab.ip(ns.far, ['-6', 'route', 'add', 'default', 'via', beyond.v6.a]);
  // the far client's window differs from the tuned one's baseline, so that the fixture tells them apart
  lab.sysctl(ns.far, { 'net.ipv4.tcp_rmem': '4096 40000 6291456' });
  for (const n of ['tuned', 'far'] as const) {
    base[n] = Object.fromEntries(TUNABLE.map((k) => [k, readSysctl(ns[n], k)]));
  }
  const lines: string[] = [];
  for (const c of CASES) {
    const stack = caseStack(c);
    expected.set(c.tag, linuxSynFingerprint(stack));
    // pf.os lines give the initial TTL, as the client sent it: the distance is what routers took off
    if (c.os !== null) lines.push(`${linuxSynFingerprint({ ...stack, routers: 0 })}:Fixture:${c.tag}:test:${c.os}`);
  }

  u = createUser('synns');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  const db = join(etc, 'pf.os');
  // the line of each case; a case's SYN must match its own line only (checked below)
  writeFileSync(db, lines.join('\n') + '\n');
  for (const f of [passwd, db]) chmodSync(f, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      `BindAddr ${direct.v4.a}`,
      `BindAddr ${direct.v6.a}`,
      `BindAddr ${toRouter.v4.a}`,
      `BindAddr ${toRouter.v6.a}`,
      'RelayNet 127.0.0.0/8',
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      'SynFP yes',
      `SynFPDB ${db}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  lab?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

test('the expected fingerprints differ from one another (the fixture tells every case apart)', { skip }, () => {
  const fps = CASES.map((c) => expected.get(c.tag)!);
  assert.equal(new Set(fps).size, fps.length, fps.join('\n'));
  assert.match(expected.get('far4')!, /^\d+:63:1:60:/);
  assert.match(expected.get('ttl')!, /^\d+:100:1:60:M1000,/);
  assert.match(expected.get('bare')!, /^\d+:64:1:44:M\d+$/);
});

for (const c of CASES) {
  const what = [
    ...Object.entries(c.sysctls ?? {}).map(([k, v]) => `${k.split('.').pop()}=${v}`),
    ...(c.route ? [`route ${c.route.join(' ')}`] : []),
  ];
  test(
    `${c.tag}: IPv${c.family} from ${c.ns === 'tuned' ? 'a tuned namespace' : 'behind a router'}${what.length ? ` (${what.join(', ')})` : ''}`,
    { skip },
    async () => {
      applyCase(c);
      // the namespace really has the settings the expectation was computed from
      const route = {
        ...(c.stack.advmss ? { advmss: c.stack.advmss } : {}),
        ...(c.stack.mtu ? { mtu: c.stack.mtu } : {}),
        routers: c.stack.routers ?? 0,
      };
      assert.equal(linuxSynFingerprint(readLinuxStack(ns[c.ns], c.family, clientDev(c), route)), expected.get(c.tag));
      const r = await lab.run(
        ns[c.ns],
        nsSmtpClientArgv({ host: daemonAddress(c), port: d.port, rcpts: [`${u.name}+${c.tag}@a.example`] }),
      );
      const out = JSON.parse(r.out.trim() || '{}') as { port?: number; replies?: string[]; error?: string };
      assert.equal(out.error, undefined, r.err);
      assert.match(out.replies?.[3] ?? '', /^250 /, JSON.stringify(out));
      const env = readEnv(u.home, c.tag);
      assert.equal(
        env.CLIENT_IP,
        c.family === 4 ? (c.ns === 'tuned' ? direct.v4.b : beyond.v4.b) : c.ns === 'tuned' ? direct.v6.b : beyond.v6.b,
      );
      assert.equal(env.CLIENT_PORT, String(out.port));
      assert.deepEqual(
        { CLIENT_SYNFP: env.CLIENT_SYNFP, CLIENT_SYNOS: env.CLIENT_SYNOS, CLIENT_NETHOPS: env.CLIENT_NETHOPS },
        { CLIENT_SYNFP: expected.get(c.tag), CLIENT_SYNOS: c.os ?? undefined, CLIENT_NETHOPS: String(c.hops) },
      );
    },
  );
}
