/**
 * PROXY protocol (issue 16, item 4) through a real HAProxy (Debian's): asmtpd behind one frontend
 * that sends a v1 header (send-proxy) and one that sends v2 (send-proxy-v2). The clients connect
 * to HAProxy from addresses of their own (127.0.0.77, .78, .79), HAProxy connects to asmtpd from
 * 127.0.0.1, the only ProxyProtocol peer: the user's script (CLIENT_IP, CLIENT_PORT), the
 * session.connect line, RelayNet, MaxClientsPerIP, Received and X-Avenger all see the original
 * client. Refused: a PROXY header sent by a client that is not listed (421, closed), and a
 * connection from the listed peer without one (closed before any banner); both logged as
 * session.proxy_refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { freePort } from '../support/ports.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { SmtpClient } from '../support/smtp-client.js';

const HAPROXY = '/usr/sbin/haproxy';
const skip = canCreateUsers() ?? (existsSync(HAPROXY) ? false : 'haproxy is not installed (Debian package haproxy)');

let u: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;
let plain: Daemon;
let haproxy: ChildProcess;
let haproxyOut = '';
const front = { v1: 0, v2: 0 };

/** HAProxy in the foreground (-db): two TCP frontends, each with its backend on asmtpd. */
async function startHaproxy(backendPort: number): Promise<void> {
  front.v1 = await freePort();
  front.v2 = await freePort();
  const cfg = join(etc, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 100',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      `frontend smtp_v1`,
      `  bind 127.0.0.1:${front.v1}`,
      '  default_backend asmtpd_v1',
      'backend asmtpd_v1',
      `  server asmtpd 127.0.0.1:${backendPort} send-proxy`,
      `frontend smtp_v2`,
      `  bind 127.0.0.1:${front.v2}`,
      '  default_backend asmtpd_v2',
      'backend asmtpd_v2',
      `  server asmtpd 127.0.0.1:${backendPort} send-proxy-v2`,
      '',
    ].join('\n'),
  );
  execFileSync(HAPROXY, ['-c', '-f', cfg], { stdio: 'pipe' });
  haproxy = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (b: Buffer) => (haproxyOut += b.toString()));
  haproxy.stderr!.on('data', (b: Buffer) => (haproxyOut += b.toString()));
  // listening on both (read from the kernel: a test connection would be a session of its own)
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ss = execFileSync('ss', ['-Hltn'], { encoding: 'utf8' });
    if ([front.v1, front.v2].every((p) => ss.includes(`127.0.0.1:${p} `))) return;
    if (haproxy.exitCode !== null || Date.now() > deadline) throw new Error(`haproxy did not start: ${haproxyOut}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const rcptOf = (): string => `${u.name}@a.example`;

/** A client of HAProxy from `from`: the banner is asmtpd's. */
async function viaHaproxy(version: 'v1' | 'v2', from: string): Promise<SmtpClient> {
  const c = await SmtpClient.connect(front[version], '127.0.0.1', from);
  return c;
}

before(async () => {
  if (skip) return;
  u = createUser('proxy');
  writeScript(u, 'rcpt', 'accept "client=$CLIENT_IP:$CLIENT_PORT syn=$CLIENT_SYNFP"');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  const common = ['LocalDomain a.example', `PasswdFile ${passwd}`, `RelayHost 127.0.0.1:${sink.port}`];
  d = await startDaemon({
    etcDir: etc,
    conf: [
      ...common,
      // HAProxy connects from 127.0.0.1; only .77 of its clients may relay, and one session per client address
      'ProxyProtocol 127.0.0.1/32',
      'RelayNet 127.0.0.77/32',
      'MaxClientsPerIP 1',
      // the SYN asmtpd sees behind HAProxy is HAProxy's: no SYN fact for a proxied client
      'SynFP yes',
    ].join('\n'),
  });
  await d.waitLog((l) => l.event === 'netfacts.start');
  plain = await startDaemon({ etcDir: etc, conf: common.join('\n') });
  await startHaproxy(d.port);
});

after(async () => {
  if (skip) return;
  haproxy?.kill('SIGTERM');
  await d?.stop();
  await plain?.stop();
  await sink?.close();
  if (u) removeUser(u);
  rmSync(etc, { recursive: true, force: true });
});

for (const [version, from, relayNet] of [
  ['v1', '127.0.0.77', true],
  ['v2', '127.0.0.78', false],
] as const) {
  test(
    `PROXY ${version} through HAProxy: the script, the log, RelayNet, Received and X-Avenger see ${from}`,
    { skip },
    async () => {
      const before = sink.messages.length;
      const c = await viaHaproxy(version, from);
      assert.match((await c.greeting()).last, /^220 /);
      const clientPort = c.socket.localPort!;
      assert.match((await c.cmd('EHLO client.test')).last, /^250 /);
      assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
      assert.equal((await c.cmd(`RCPT TO:<${rcptOf()}>`)).last, `250 2.1.5 client=${from}:${clientPort} syn=`);
      assert.match((await c.cmd('DATA')).last, /^354 /);
      c.write(`Subject: proxied ${version}\r\n\r\nthrough HAProxy\r\n.\r\n`);
      assert.match((await c.reply()).last, /^250 2\.0\.0 /);
      await c.cmd('QUIT');
      c.close();

      const connected = await d.waitLog((l) => l.event === 'session.connect' && l.ip === from);
      assert.equal(connected.port, clientPort);
      assert.equal(connected.proxy, '127.0.0.1');
      assert.equal(connected.proxy_version, version === 'v1' ? 1 : 2);
      assert.equal(connected.relay_net, relayNet, 'RelayNet is checked against the client, not HAProxy');
      const m = sink.messages[before];
      assert.ok(m, 'relayed');
      const head = m.data
        .toString('latin1')
        .split('\r\n\r\n')[0]!
        .replace(/\r\n\s+/g, ' ');
      assert.match(head, new RegExp(`X-Avenger: .*client-ip=${from.replace(/\./g, '\\.')}; client-port=${clientPort}`));
      assert.match(head, new RegExp(`^Received: from client\\.test \\(\\[${from.replace(/\./g, '\\.')}\\]\\)`, 'm'));
      assert.doesNotMatch(head, /127\.0\.0\.1/, 'HAProxy appears nowhere in the message');
      assert.doesNotMatch(head, /syn-fp=|hops=/, "no SYN fact: it would be HAProxy's");
    },
  );
}

test(
  'a client straight to asmtpd from an unlisted address is served as before, with its own SYN',
  { skip },
  async () => {
    const c = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.82');
    assert.match((await c.greeting()).last, /^220 /);
    assert.match((await c.cmd('EHLO client.test')).last, /^250 /);
    assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
    const port = c.socket.localPort!;
    assert.match(
      (await c.cmd(`RCPT TO:<${rcptOf()}>`)).last,
      new RegExp(`^250 2\\.1\\.5 client=127\\.0\\.0\\.82:${port} syn=\\d+:`),
    );
    c.close();
    const connected = await d.waitLog((l) => l.event === 'session.connect' && l.ip === '127.0.0.82');
    assert.equal(connected.proxy, undefined);
  },
);

test('MaxClientsPerIP counts the clients behind HAProxy, not HAProxy', { skip }, async () => {
  const first = await viaHaproxy('v1', '127.0.0.79');
  assert.match((await first.greeting()).last, /^220 /);
  const other = await viaHaproxy('v2', '127.0.0.80');
  assert.match((await other.greeting()).last, /^220 /, 'another client through the same HAProxy');
  const second = await viaHaproxy('v2', '127.0.0.79');
  assert.equal((await second.greeting()).last, '421 4.7.0 too many connections from your address, try again later');
  const refused = await d.waitLog((l) => l.event === 'session.refused' && l.ip === '127.0.0.79');
  assert.equal(refused.limit, 'max-per-ip');
  for (const c of [first, other, second]) c.close();
});

test('refused: a PROXY header from a client that is not listed, and none from the listed peer', { skip }, async () => {
  // straight to asmtpd from 127.0.0.77 (not listed): the header is refused, nothing after it is read
  const forged = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.77');
  assert.match((await forged.greeting()).last, /^220 /);
  forged.write('PROXY TCP4 192.0.2.66 127.0.0.1 40000 25\r\nMAIL FROM:<forged@remote.test>\r\n');
  assert.equal(
    (await forged.reply()).last,
    '421 4.7.0 PROXY header not accepted from your address, closing connection',
  );
  assert.ok(await forged.waitClosed(), 'closed');
  const notListed = await d.waitLog((l) => l.event === 'session.proxy_refused' && l.reason === 'not-listed');
  assert.equal(notListed.peer, '127.0.0.77');
  assert.equal(notListed.ip, '127.0.0.77');
  assert.equal(notListed.level, 'warn');
  assert.equal(
    d.logs.some((l) => l.ip === '192.0.2.66'),
    false,
    'the forged address appears nowhere',
  );

  // from the listed peer (127.0.0.1) without a header: closed before any banner
  const bare = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.1');
  bare.write('EHLO no-header.test\r\n');
  assert.ok(await bare.waitClosed(), 'closed');
  assert.equal((bare as unknown as { buf: string }).buf, '', 'no banner, no reply');
  const missing = await d.waitLog((l) => l.event === 'session.proxy_refused' && l.reason === 'no-header');
  assert.equal(missing.peer, '127.0.0.1');

  // and the daemon serves on
  const c = await viaHaproxy('v2', '127.0.0.81');
  assert.match((await c.greeting()).last, /^220 /);
  c.close();
});

test('without ProxyProtocol nothing changes: a PROXY line is an unknown command', { skip }, async () => {
  const c = await SmtpClient.connect(plain.port, '127.0.0.1', '127.0.0.77');
  assert.match((await c.greeting()).last, /^220 /);
  assert.match((await c.cmd('PROXY TCP4 192.0.2.66 127.0.0.1 40000 25')).last, /^5\d\d /);
  assert.match((await c.cmd(`EHLO client.test`)).last, /^250 /);
  assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
  assert.equal((await c.cmd(`RCPT TO:<${rcptOf()}>`)).last, `250 2.1.5 client=127.0.0.77:${c.socket.localPort} syn=`);
  c.close();
  assert.equal(
    plain.logs.some((l) => l.event === 'session.proxy_refused'),
    false,
  );
});
