/**
 * CLIENT_SYNOS names today's systems with the shipped databases (issue 17, item 4): the daemon
 * runs with SynFP on and no SynFPDB line (share/pf.os.modern, then share/pf.os), and a
 * recipient's script records what it sees for
 *
 *   - this machine's own Linux: SYNs its kernel sends over loopback (IPv4, IPv6), and from a
 *     network namespace through a veth (IPv4, IPv6; the namespace's stack at Linux's default
 *     tcp_rmem), each CLIENT_SYNFP as the kernel must build it (support/netns.ts)
 *   - SYNs carrying the published parameters of Windows 10/11, macOS and FreeBSD 14 (and Windows
 *     from seven routers away), sent by a userspace TCP client over a TUN device
 *     (support/user-tcp.ts) that then holds a real SMTP dialogue: greeting, EHLO, MAIL, RCPT, QUIT.
 *
 * Each case checks CLIENT_SYNFP (the SYN that arrived), CLIENT_SYNOS and CLIENT_NETHOPS, and that
 * `synos -v "$CLIENT_SYNFP"`, run by the script as the user (the installed command, first on the
 * scripts' PATH), gives the same answer from the same line of pf.os.modern. Needs root (users,
 * namespaces, a TUN device, the capture); skipped with the reason otherwise, an error in CI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, readEnv } from '../support/facts.js';
import { DEFAULT_MODERN_PATH } from 'asmtpd/dist/facts/synfp/pfos.js';
import {
  LINUX_DEFAULT_TCP_RMEM,
  createNetLab,
  linuxSynFingerprint,
  netnsUnavailable,
  readLinuxStack,
  type Link,
  type NetLab,
} from '../support/netns.js';
import { openTun, tunUnavailable, type Tun } from '../support/user-tcp.js';
import { nsSmtpClientArgv } from '../support/ns-smtp-client.js';

const unavailable = canCreateUsers() ?? netnsUnavailable() ?? tunUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

/** The crafted SYNs: published parameters (share/pf.os.modern cites the sources), the TTL as it arrives. */
const CRAFTED = [
  {
    tag: 'win',
    what: 'Windows 10/11',
    fp: '64240:128:1:52:M1460,N,W8,N,N,S',
    os: 'Windows 10/11 (or Server 2016+)',
    hops: 0,
  },
  {
    tag: 'winfar',
    what: 'Windows 10/11 seven routers away',
    fp: '64240:121:1:52:M1460,N,W8,N,N,S',
    os: 'Windows 10/11 (or Server 2016+)',
    hops: 7,
  },
  { tag: 'mac', what: 'macOS', fp: '65535:64:1:64:M1460,N,W6,N,N,T,S,E', os: 'macOS or iOS', hops: 0 },
  { tag: 'fbsd', what: 'FreeBSD 14 two routers away', fp: '65535:62:1:60:M1460,N,W6,S,T', os: 'FreeBSD 9-14', hops: 2 },
];

let lab: NetLab;
let ns: string;
let link: Link;
let tun: Tun;
let u: TestUser;
let etc: string;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  lab = createNetLab();
  ns = lab.namespace('linux');
  link = lab.link(null, ns);
  // a namespace copies the root namespace's tcp_rmem: set Linux's default, whatever this host's tuning
  lab.sysctl(ns, { 'net.ipv4.tcp_rmem': LINUX_DEFAULT_TCP_RMEM });
  tun = await openTun();
  u = createUser('synmod');
  // synos as the user, on what the daemon captured; then the environment
  writeScript(u, 'rcpt+default', `synos -v "$CLIENT_SYNFP" > "$HOME/synos.$EXTENSION" 2>&1; ${ENV_SCRIPT}`);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'BindAddr ::1',
      `BindAddr ${link.v4.a}`,
      `BindAddr ${link.v6.a}`,
      `BindAddr ${tun.local}`,
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      'SynFP yes',
      // no SynFPDB: the shipped pf.os.modern and pf.os
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await tun?.close();
  lab?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** What the script saw; and `synos -v` run by it agrees, from a line of pf.os.modern. */
function synVars(tag: string): Record<string, string | undefined> {
  const env = readEnv(u.home, tag);
  const synos = readFileSync(join(u.home, `synos.${tag}`), 'utf8').split('\n');
  assert.equal(synos[0], env.CLIENT_SYNOS, `synos: ${synos.join(' | ')}`);
  assert.equal(synos[1], `distance: ${env.CLIENT_NETHOPS}`);
  assert.ok(synos[2]?.startsWith(`signature: ${DEFAULT_MODERN_PATH}:`), synos[2]);
  return { CLIENT_SYNFP: env.CLIENT_SYNFP, CLIENT_SYNOS: env.CLIENT_SYNOS, CLIENT_NETHOPS: env.CLIENT_NETHOPS };
}

test('the daemon reads the shipped databases without a complaint', { skip }, async () => {
  const start = await d.waitLog((l) => l.event === 'netfacts.start');
  assert.equal(start.capture, 'on');
  assert.deepEqual(
    d.logs.filter((l) => l.event === 'synfp.db_error'),
    [],
  );
});

for (const family of [4, 6] as const) {
  test(`this machine's Linux over loopback (IPv${family}): CLIENT_SYNOS names it`, { skip }, async (t) => {
    const expected = linuxSynFingerprint(readLinuxStack(null, family, 'lo'));
    const tag = `lo${family}`;
    const c = await SmtpClient.connect(d.port, family === 4 ? '127.0.0.1' : '::1');
    try {
      assert.match((await c.greeting()).last, /^220 /);
      await c.cmd('EHLO client.example');
      await c.cmd('MAIL FROM:<s@b.example>');
      assert.match((await c.cmd(`RCPT TO:<${u.name}+${tag}@a.example>`)).last, /^250 /);
      await c.cmd('QUIT');
    } finally {
      c.close();
    }
    const seen = synVars(tag);
    t.diagnostic(`${seen.CLIENT_SYNFP} -> ${seen.CLIENT_SYNOS}`);
    assert.deepEqual(seen, { CLIENT_SYNFP: expected, CLIENT_SYNOS: 'Linux 4.19+ (loopback)', CLIENT_NETHOPS: '0' });
  });
}

for (const family of [4, 6] as const) {
  test(
    `this machine's Linux from a namespace through a veth (IPv${family}): CLIENT_SYNOS names it`,
    { skip },
    async (t) => {
      const stack = readLinuxStack(ns, family, link.bDev);
      assert.deepEqual(stack.rmem, LINUX_DEFAULT_TCP_RMEM.split(' ').map(Number));
      const expected = linuxSynFingerprint(stack);
      const tag = `veth${family}`;
      const r = await lab.run(
        ns,
        nsSmtpClientArgv({
          host: family === 4 ? link.v4.a : link.v6.a,
          port: d.port,
          rcpts: [`${u.name}+${tag}@a.example`],
        }),
      );
      const out = JSON.parse(r.out.trim() || '{}') as { replies?: string[]; error?: string };
      assert.equal(out.error, undefined, r.err);
      assert.match(out.replies?.[3] ?? '', /^250 /, JSON.stringify(out));
      const seen = synVars(tag);
      t.diagnostic(`${seen.CLIENT_SYNFP} -> ${seen.CLIENT_SYNOS}`);
      assert.deepEqual(seen, { CLIENT_SYNFP: expected, CLIENT_SYNOS: 'Linux 4.19+', CLIENT_NETHOPS: '0' });
    },
  );
}

CRAFTED.forEach((c, i) => {
  test(
    `a crafted SYN with the parameters of ${c.what} (${c.fp}): a real SMTP session, CLIENT_SYNOS names it`,
    { skip },
    async (t) => {
      const src = tun.peer(10 + i);
      const conn = await tun.connect({ src, dst: tun.local, dport: d.port, fingerprint: c.fp });
      assert.match((await conn.reply()).last, /^220 /);
      assert.match((await conn.cmd('EHLO desktop.example')).last, /^250 /);
      assert.match((await conn.cmd('MAIL FROM:<s@b.example>')).last, /^250 /);
      assert.match((await conn.cmd(`RCPT TO:<${u.name}+${c.tag}@a.example>`)).last, /^250 /);
      assert.match((await conn.cmd('QUIT')).last, /^221 /);
      await conn.close();
      assert.equal(conn.ending, 'fin', 'the session ended with a FIN each way');
      const env = readEnv(u.home, c.tag);
      assert.deepEqual([env.CLIENT_IP, env.CLIENT_PORT], [src, String(conn.localPort)]);
      const seen = synVars(c.tag);
      t.diagnostic(`${seen.CLIENT_SYNFP} -> ${seen.CLIENT_SYNOS}, ${seen.CLIENT_NETHOPS} hops`);
      assert.deepEqual(seen, { CLIENT_SYNFP: c.fp, CLIENT_SYNOS: c.os, CLIENT_NETHOPS: String(c.hops) });
    },
  );
});
