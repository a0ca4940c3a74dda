/**
 * examples/dot-avenger/windows-desktop/rcpt end to end: installed verbatim as a user's
 * ~/.avenger/rcpt, run by the real daemon (SynFP on, the shipped databases) for
 *
 *   - crafted SYNs with Windows 10/11's published parameters (support/user-tcp.ts: a userspace TCP
 *     client over a TUN device holding a real SMTP dialogue), from clients with and without a
 *     confirmed reverse name, with and without SPF pass, logged in or not, sending a bounce;
 *   - this machine's own Linux (its kernel's SYN, from a network namespace through a veth) and a
 *     crafted macOS SYN, neither with reverse DNS nor SPF: the example must not act on them.
 *
 * Reverse DNS and SPF come from a DNS server of the test (support/dns-server.ts). Each session
 * first gives a recorder recipient (another user whose script saves its environment), so every
 * case also shows what the example saw: CLIENT_SYNOS, CLIENT_NAME, SPF. Needs root; skipped with
 * the reason otherwise, an error in CI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, reverseName, type DnsServer } from '../support/dns-server.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, readEnv } from '../support/facts.js';
import { LINUX_DEFAULT_TCP_RMEM, createNetLab, netnsUnavailable, type Link, type NetLab } from '../support/netns.js';
import { openTun, tunUnavailable, type Tun, type UserTcp } from '../support/user-tcp.js';
import { nsSmtpClientArgv } from '../support/ns-smtp-client.js';

const EXAMPLE = new URL('../../../examples/dot-avenger/windows-desktop/rcpt', import.meta.url).pathname;

const unavailable = canCreateUsers() ?? netnsUnavailable() ?? tunUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const WINDOWS = '64240:118:1:52:M1460,N,W8,N,N,S'; // Windows 10/11, ten routers away
const MACOS = '65535:57:1:64:M1460,N,W6,N,N,T,S,E';
const NO_NAME =
  '451 4.7.1 mail from Windows hosts without a confirmed host name (reverse DNS) is delayed here, try again later';
const NO_SPF = "451 4.7.1 mail from Windows hosts must pass SPF for the sender's domain here; delayed, try again later";
const OK = '250 2.1.5 recipient ok';

let lab: NetLab;
let ns: string;
let link: Link;
let tun: Tun;
let dns: DnsServer;
let u: TestUser;
let rec: TestUser;
let etc: string;
let d: Daemon;

/** client addresses behind the TUN device */
const HOST = { named: 20, nameless: 21, namedNoSpf: 22, login: 23, bounce: 24, mac: 25 } as const;

before(async () => {
  if (unavailable) return;
  lab = createNetLab();
  ns = lab.namespace('linux');
  link = lab.link(null, ns);
  lab.sysctl(ns, { 'net.ipv4.tcp_rmem': LINUX_DEFAULT_TCP_RMEM });
  tun = await openTun();
  const peer = (n: number): string => tun.peer(n);
  dns = await startDnsServer({
    doh: false,
    records: {
      // forward-confirmed names for three of the Windows clients
      [reverseName(peer(HOST.named))]: [{ type: 'PTR', domain: 'desk1.good.example' }],
      'desk1.good.example': [{ type: 'A', address: peer(HOST.named) }],
      [reverseName(peer(HOST.namedNoSpf))]: [{ type: 'PTR', domain: 'desk2.good.example' }],
      'desk2.good.example': [{ type: 'A', address: peer(HOST.namedNoSpf) }],
      [reverseName(peer(HOST.bounce))]: [{ type: 'PTR', domain: 'mx.good.example' }],
      'mx.good.example': [{ type: 'A', address: peer(HOST.bounce) }],
      // a PTR that does not lead back (not confirmed: CLIENT_NAME unset)
      [reverseName(peer(HOST.nameless))]: [{ type: 'PTR', domain: 'elsewhere.good.example' }],
      'elsewhere.good.example': [{ type: 'A', address: '192.0.2.99' }],
      // good.example's mail comes from desk1 only; nospf.example publishes nothing
      'good.example': [{ type: 'TXT', data: `v=spf1 ip4:${peer(HOST.named)} -all` }],
    },
  });
  u = createUser('exwin');
  rec = createUser('exwinrec');
  writeScript(rec, 'rcpt+default', ENV_SCRIPT);
  const body = readFileSync(EXAMPLE, 'utf8');
  writeScript(u, 'rcpt', body, 0o755);
  assert.equal(readFileSync(join(u.home, '.avenger', 'rcpt'), 'utf8'), body);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u) + passwdLine(rec));
  const authFile = join(etc, 'auth-users');
  const hash = execFileSync('openssl', ['passwd', '-6', '-salt', 'windowsdesk', 'laptop secret'], {
    encoding: 'utf8',
  }).trim();
  writeFileSync(authFile, `roaming:${hash}\n`);
  for (const f of [passwd, authFile]) chmodSync(f, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      `BindAddr ${link.v4.a}`,
      `BindAddr ${tun.local}`,
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      `AuthFile ${authFile}`,
      'InsecureAuth yes',
      'SynFP yes',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await dns?.close();
  await tun?.close();
  lab?.close();
  for (const x of [u, rec]) if (x) removeUser(x);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** What the recorder saw in the session tagged `tag`. */
function seen(tag: string): Record<string, string | undefined> {
  const env = readEnv(rec.home, tag);
  return { CLIENT_SYNOS: env.CLIENT_SYNOS, CLIENT_NAME: env.CLIENT_NAME, SPF: env.SPF, AUTH_USER: env.AUTH_USER };
}

const WIN_OS = 'Windows 10/11 (or Server 2016+)';

/**
 * A session from a crafted SYN: the recorder recipient (tagged), then the example's user; that
 * RCPT's reply. The session ends with QUIT.
 */
async function crafted(
  tag: string,
  host: number,
  fingerprint: string,
  from: string,
  login?: [string, string],
): Promise<string> {
  const conn: UserTcp = await tun.connect({ src: tun.peer(host), dst: tun.local, dport: d.port, fingerprint });
  assert.match((await conn.reply()).last, /^220 /);
  assert.match((await conn.cmd('EHLO desktop.example')).last, /^250 /);
  if (login) {
    const plain = Buffer.from(`\0${login[0]}\0${login[1]}`).toString('base64');
    assert.match((await conn.cmd(`AUTH PLAIN ${plain}`)).last, /^235 /);
  }
  assert.match((await conn.cmd(`MAIL FROM:<${from}>`)).last, /^250 /);
  assert.equal((await conn.cmd(`RCPT TO:<${rec.name}+${tag}@a.example>`)).last, OK);
  const rcpt = (await conn.cmd(`RCPT TO:<${u.name}@a.example>`)).last;
  assert.match((await conn.cmd('QUIT')).last, /^221 /);
  await conn.close();
  return rcpt;
}

test('Windows without a confirmed reverse name: deferred', { skip }, async () => {
  assert.equal(await crafted('nameless', HOST.nameless, WINDOWS, 'someone@nospf.example'), NO_NAME);
  // its PTR name does not lead back to it: not confirmed
  assert.deepEqual(seen('nameless'), {
    CLIENT_SYNOS: WIN_OS,
    CLIENT_NAME: undefined,
    SPF: 'none',
    AUTH_USER: undefined,
  });
});

test('Windows with a confirmed name but no SPF pass: deferred', { skip }, async () => {
  assert.equal(await crafted('nospf', HOST.namedNoSpf, WINDOWS, 'someone@nospf.example'), NO_SPF);
  assert.deepEqual(seen('nospf'), {
    CLIENT_SYNOS: WIN_OS,
    CLIENT_NAME: 'desk2.good.example',
    SPF: 'none',
    AUTH_USER: undefined,
  });
  // SPF fail (good.example names desk1 only) is not a pass either
  assert.equal(await crafted('spffail', HOST.namedNoSpf, WINDOWS, 'someone@good.example'), NO_SPF);
  assert.equal(seen('spffail').SPF, 'fail');
});

test(
  'Windows with a confirmed name and SPF pass: let through (no decision; the system default accepts)',
  { skip },
  async () => {
    assert.equal(await crafted('good', HOST.named, WINDOWS, 'someone@good.example'), OK);
    assert.deepEqual(seen('good'), {
      CLIENT_SYNOS: WIN_OS,
      CLIENT_NAME: 'desk1.good.example',
      SPF: 'pass',
      AUTH_USER: undefined,
    });
  },
);

test('Windows sending a bounce (<>): a confirmed name is enough; without one, deferred', { skip }, async () => {
  assert.equal(await crafted('bounce', HOST.bounce, WINDOWS, ''), OK);
  assert.deepEqual([seen('bounce').CLIENT_SYNOS, seen('bounce').CLIENT_NAME], [WIN_OS, 'mx.good.example']);
  assert.equal(await crafted('bounce2', HOST.nameless, WINDOWS, ''), NO_NAME);
});

test('Windows, logged in (AUTH_USER): let through without a name or SPF', { skip }, async () => {
  assert.equal(await crafted('login', HOST.login, WINDOWS, 'someone@nospf.example', ['roaming', 'laptop secret']), OK);
  assert.deepEqual(seen('login'), { CLIENT_SYNOS: WIN_OS, CLIENT_NAME: undefined, SPF: 'none', AUTH_USER: 'roaming' });
});

test('not Windows: a crafted macOS SYN without a name or SPF is let through', { skip }, async () => {
  assert.equal(await crafted('mac', HOST.mac, MACOS, 'someone@nospf.example'), OK);
  assert.deepEqual(seen('mac'), {
    CLIENT_SYNOS: 'macOS or iOS',
    CLIENT_NAME: undefined,
    SPF: 'none',
    AUTH_USER: undefined,
  });
});

test(
  "not Windows: this machine's Linux (kernel SYN from a namespace) without a name or SPF is let through",
  { skip },
  async () => {
    const r = await lab.run(
      ns,
      nsSmtpClientArgv({
        host: link.v4.a,
        port: d.port,
        helo: 'linux.example',
        from: 'someone@nospf.example',
        rcpts: [`${rec.name}+linux@a.example`, `${u.name}@a.example`],
      }),
    );
    const out = JSON.parse(r.out.trim() || '{}') as { replies?: string[]; error?: string };
    assert.equal(out.error, undefined, r.err);
    assert.deepEqual(out.replies?.slice(3, 5), [OK, OK], JSON.stringify(out));
    assert.deepEqual(seen('linux'), {
      CLIENT_SYNOS: 'Linux 4.19+',
      CLIENT_NAME: undefined,
      SPF: 'none',
      AUTH_USER: undefined,
    });
  },
);
