/**
 * Every X-Avenger token at once (issue 6, spec asmtpd.md §5): one delivered message whose
 * X-Avenger carries version, receiver, client-ip, client-port, client-dns, bounce-res, syn-fp,
 * syn-os, pipelining, post, hops, path, spf and rbl, each with its exact value.
 *
 *   client ns ── router ns ── root (daemon on the host end of the veth, SynFP yes, NetPath yes)
 *
 * - syn-fp, syn-os: the client's SYN as its namespace's stack must build it (support/netns.ts
 *   linuxSynFingerprint), arriving one TTL lower through the router; a fixture SynFPDB line for it
 * - hops, path: NetPath's trace from the root namespace: the router's address, then the client
 * - pipelining=pre-greeting: GreetingDelay 1s and the client's EHLO sent before the banner
 * - post: `POST / HTTP/1.0` after the banner (502, the session goes on)
 * - client-dns, spf=pass, rbl=ZONE: a loopback DNS server (the daemon is in the root namespace):
 *   PTR + A of the client, the sender domain's SPF record, a DNSBL listing the client with a
 *   score below RBLThreshold (no rejection)
 * - bounce-res: the sender domain's MX is a probe target on 127.0.0.48:25 that refuses the RCPT;
 *   the client is outside RelayNet so it is probed; the recipient's rcpt script accepts (the
 *   MAIL_ERROR of the refused bounce does not reject)
 * The client is a small node script run inside the namespace; the sink (RelayHost) gets the message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, rblName, reverseName, type DnsServer } from '../support/dns-server.js';
import { startSink, type Sink } from '../support/sink.js';
import { startProbeTarget, type ProbeTarget } from '../support/probe-target.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, readEnv } from '../support/facts.js';
import {
  createNetLab,
  linuxSynFingerprint,
  netnsUnavailable,
  readLinuxStack,
  type Link,
  type NetLab,
} from '../support/netns.js';

const unavailable = canCreateUsers() ?? netnsUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../packages/asmtpd/package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
const SENDER = 'alice@sender.example';
const CLIENT_NAME = 'client.far.example';
const ZONE = 'bl.example';
const PROBE_HOST = '127.0.0.48';
const OS = 'Fixture all tokens';

/**
 * The client (runs inside the namespace): connects, writes the first step at once (before
 * the banner), then each next step after the replies the previous one waits for. Steps are
 * [text, replies to read]. Prints {"port":N,"replies":[last line of each reply]} or {"error"}.
 */
const CLIENT = `
const [host, port, stepsJson] = process.argv.slice(1);
const steps = JSON.parse(stepsJson);
const replies = [];
let local = 0, partial = '', waiting = 0;
const s = require('net').connect({ host, port: Number(port) }, () => {
  local = s.localPort;
  next();
});
function next() {
  const step = steps.shift();
  if (!step) return s.end();
  waiting = step[1];
  s.write(step[0]);
}
s.setTimeout(15000, () => s.destroy(new Error('timeout; replies: ' + JSON.stringify(replies))));
s.on('data', (d) => {
  partial += d.toString('latin1');
  let i;
  while ((i = partial.indexOf('\\r\\n')) >= 0) {
    const line = partial.slice(0, i);
    partial = partial.slice(i + 2);
    if (/^\\d{3}-/.test(line)) continue;
    replies.push(line);
    if (--waiting === 0) next();
  }
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exitCode = 1; });
s.on('close', () => { if (process.exitCode !== 1) console.log(JSON.stringify({ port: local, replies })); });
`;

let lab: NetLab;
let ns: { router: string; client: string };
let toRouter: Link, beyond: Link;
let u: TestUser;
let etc: string;
let dns: DnsServer;
let sink: Sink;
let probe: ProbeTarget;
let d: Daemon;
let expectedFp: string;

before(async () => {
  if (unavailable) return;
  lab = createNetLab();
  ns = { router: lab.namespace('router'), client: lab.namespace('client') };
  toRouter = lab.link(null, ns.router);
  beyond = lab.link(ns.router, ns.client);
  lab.sysctl(ns.router, { 'net.ipv4.ip_forward': 1 });
  lab.route(null, beyond.v4.prefix, toRouter.v4.b);
  lab.route(ns.client, 'default', beyond.v4.a);
  const client = beyond.v4.b;

  // the SYN the client's stack sends, one router away; the fixture line has its initial TTL
  const stack = readLinuxStack(ns.client, 4, beyond.bDev);
  expectedFp = linuxSynFingerprint({ ...stack, routers: 1 });

  u = createUser('xavall');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  const db = join(etc, 'pf.os');
  writeFileSync(db, `${linuxSynFingerprint({ ...stack, routers: 0 })}:Fixture:all:test:${OS}\n`);
  for (const f of [passwd, db]) chmodSync(f, 0o644);

  sink = await startSink();
  probe = await startProbeTarget(PROBE_HOST, { kind: 'reject', code: 550, text: '5.1.1 unknown user' });
  dns = await startDnsServer({
    doh: false,
    records: {
      [reverseName(client)]: [{ type: 'PTR', domain: CLIENT_NAME }],
      [CLIENT_NAME]: [{ type: 'A', address: client }],
      'sender.example': [
        { type: 'TXT', data: `v=spf1 ip4:${client} -all` },
        { type: 'MX', priority: 10, exchange: 'mx.sender.example' },
      ],
      'mx.sender.example': [{ type: 'A', address: PROBE_HOST }],
      [rblName(client, ZONE)]: [
        { type: 'A', address: '127.0.0.2' },
        { type: 'TXT', data: 'listed for the test' },
      ],
    },
  });
  d = await startDaemon({
    etcDir: etc,
    conf: [
      `BindAddr ${toRouter.v4.a}`,
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      'RelayNet 192.0.2.0/24',
      `RelayHost 127.0.0.1:${sink.port}`,
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'DNSTimeout 2s',
      'AllowDNSFailures yes',
      `RBL ${ZONE} 1`,
      'RBLThreshold 2',
      'SMTPCB yes',
      'SMTPCBTimeout 3s',
      'SynFP yes',
      `SynFPDB ${db}`,
      'NetPath yes',
      'NetPathMaxHops 8',
      'GreetingDelay 1s',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  try {
    await d?.stop();
    await dns?.close();
    await sink?.close();
    await probe?.close();
  } finally {
    lab?.close();
    if (u) removeUser(u);
    if (etc) rmSync(etc, { recursive: true, force: true });
  }
});

test('one delivered message carries every X-Avenger token with its exact value', { skip }, async (t) => {
  const client = beyond.v4.b;
  const router = toRouter.v4.b;
  const rcpt = `${u.name}+all@a.example`;
  const steps: Array<[string, number]> = [
    ['EHLO client.example\r\n', 2], // before the banner: the banner, then the EHLO reply
    ['POST / HTTP/1.0\r\n', 1],
    [`MAIL FROM:<${SENDER}>\r\n`, 1],
    [`RCPT TO:<${rcpt}>\r\n`, 1],
    ['DATA\r\n', 1],
    ['Subject: every token\r\n\r\nbody\r\n.\r\n', 1],
    ['QUIT\r\n', 1],
  ];
  const t0 = Date.now();
  const r = await lab.run(
    ns.client,
    [process.execPath, '-e', CLIENT, toRouter.v4.a, String(d.port), JSON.stringify(steps)],
    { timeoutMs: 25_000 },
  );
  const out = JSON.parse(r.out.trim() || '{}') as { port?: number; replies?: string[]; error?: string };
  assert.equal(out.error, undefined, r.err);
  assert.ok(out.replies, `client: code ${r.code}, out ${JSON.stringify(r.out)}, err ${JSON.stringify(r.err)}`);
  assert.ok(Date.now() - t0 >= 950, 'the banner waited for GreetingDelay');
  const replies = out.replies ?? [];
  assert.equal(replies.length, 8, JSON.stringify(replies));
  assert.equal(replies[0], '220 mx.example.test ESMTP asmtpd');
  assert.match(replies[1]!, /^250 /);
  assert.equal(replies[2], '502 5.7.0 HTTP requests are not accepted: this is an SMTP server');
  assert.equal(replies[3], '250 2.1.0 sender ok');
  assert.equal(replies[4], '250 2.1.5 recipient ok');
  assert.match(replies[5]!, /^354 /);
  assert.match(replies[6]!, /^250 2\.0\.0 Ok: queued as /);
  assert.match(replies[7]!, /^221 /);

  // what the script saw agrees (and MAIL_ERROR was there to override)
  const env = readEnv(u.home, 'all');
  assert.deepEqual(
    Object.fromEntries(
      [
        'CLIENT_IP',
        'CLIENT_PORT',
        'CLIENT_NAME',
        'CLIENT_SYNFP',
        'CLIENT_SYNOS',
        'CLIENT_PIPELINING',
        'CLIENT_POST',
        'CLIENT_NETHOPS',
        'CLIENT_NETPATH',
        'SPF',
        'RBL_LISTED',
        'RBL_SCORE',
        'SENDER_BOUNCERES',
      ].map((k) => [k, env[k]]),
    ),
    {
      CLIENT_IP: client,
      CLIENT_PORT: String(out.port),
      CLIENT_NAME,
      CLIENT_SYNFP: expectedFp,
      CLIENT_SYNOS: OS,
      CLIENT_PIPELINING: 'pre-greeting',
      CLIENT_POST: '1',
      CLIENT_NETHOPS: '1',
      CLIENT_NETPATH: router,
      SPF: 'pass',
      RBL_LISTED: ZONE,
      RBL_SCORE: '1',
      SENDER_BOUNCERES: '550 5.1.1 unknown user',
    },
  );
  assert.match(env.MAIL_ERROR ?? '', /^550 5\.1\.8 /);
  assert.equal(probe.sessions.at(-1)?.rcptTo.at(-1), SENDER);

  // the message as the downstream got it
  assert.equal(sink.messages.length, 1);
  const text = sink.messages[0]!.data.toString('latin1');
  const m = /^X-Avenger:[^\r]*(?:\r\n[ \t][^\r]*)*\r\n/m.exec(text);
  assert.ok(m, text);
  const lines = m[0].slice(0, -2).split('\r\n');
  for (const l of lines) t.diagnostic(l);
  assert.deepEqual(
    lines.filter((l) => l.length > 78),
    [],
    'no line over 78 columns',
  );
  const value = lines
    .join('')
    .replace(/^X-Avenger:\s*/, '')
    .replace(/\t/g, ' ');
  const tokens = value.split('; ');
  assert.deepEqual(tokens, [
    `version=${VERSION}`,
    'receiver=mx.example.test',
    `client-ip=${client}`,
    `client-port=${out.port}`,
    `client-dns=${CLIENT_NAME}`,
    'bounce-res=550 5.1.1 unknown user',
    `syn-fp=${expectedFp}`,
    `syn-os=${OS}`,
    'pipelining=pre-greeting',
    'post',
    'hops=1',
    `path=${router}`,
    'spf=pass',
    `rbl=${ZONE}`,
  ]);
  // the only `;` are the separators; no value has CR or LF (the header was unfolded above)
  assert.equal(value.split(';').length, tokens.length);
  for (const t of tokens) assert.doesNotMatch(t, /[;\r\n]/, t);
});
