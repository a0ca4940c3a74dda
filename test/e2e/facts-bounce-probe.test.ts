/**
 * Client facts end to end (issue 5): the bounce probe (SMTPCB) against real SMTP servers on port 25
 * of 127.0.0.2 … 127.0.0.5 (needs root), found through MX records of a loopback DNS server —
 * SENDER_BOUNCERES and MAIL_ERROR for a sender whose domain accepts the bounce, refuses it (550),
 * or never answers (SMTPCBTimeout); the cache (a second session makes no connection); one
 * connection shared by two concurrent sessions; MX preference order; no probe for the null
 * sender or our own domain; and the X-Avenger bounce-res token of a relayed message (the sink is
 * RelayHost).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { startProbeTarget, type ProbeTarget } from '../support/probe-target.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, factVars, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
let etc: string;
let dns: DnsServer;
let sink: Sink;
let d: Daemon;
let ok: ProbeTarget;
let refuse: ProbeTarget;
let stall: ProbeTarget;
let slow: ProbeTarget;

const PROBE_TIMEOUT_MS = 2000;
const SPF_NONE = { SPF: 'none', SPF_HELO: 'none' };

before(async () => {
  if (unavailable) return;
  u = createUser('probe');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  [ok, refuse, stall, slow] = await Promise.all([
    startProbeTarget('127.0.0.2', { kind: 'accept' }),
    startProbeTarget('127.0.0.3', { kind: 'reject', code: 550, text: '5.1.1 unknown user' }),
    startProbeTarget('127.0.0.4', { kind: 'stall' }),
    startProbeTarget('127.0.0.5', { kind: 'accept', rcptDelayMs: 700 }),
  ]);
  sink = await startSink();
  dns = await startDnsServer({
    doh: false,
    records: {
      'ok.example': [{ type: 'MX', priority: 10, exchange: 'mx.ok.example' }],
      'mx.ok.example': [{ type: 'A', address: '127.0.0.2' }],
      'refuse.example': [{ type: 'MX', priority: 10, exchange: 'mx.refuse.example' }],
      'mx.refuse.example': [{ type: 'A', address: '127.0.0.3' }],
      'stall.example': [{ type: 'MX', priority: 10, exchange: 'mx.stall.example' }],
      'mx.stall.example': [{ type: 'A', address: '127.0.0.4' }],
      'slow.example': [{ type: 'MX', priority: 10, exchange: 'mx.slow.example' }],
      'mx.slow.example': [{ type: 'A', address: '127.0.0.5' }],
      // preference order: 5 (nothing listens on 127.0.0.6:25) before 20 (accepts); 30 never tried
      'pref.example': [
        { type: 'MX', priority: 30, exchange: 'mx.refuse.example' },
        { type: 'MX', priority: 5, exchange: 'dead.pref.example' },
        { type: 'MX', priority: 20, exchange: 'mx.ok.example' },
      ],
      'dead.pref.example': [{ type: 'A', address: '127.0.0.6' }],
      // no MX: the domain's own address is the exchanger (RFC 5321 §5.1)
      'implicit.example': [{ type: 'A', address: '127.0.0.3' }],
      // null MX: refuses all mail, no connection
      'nullmx.example': [{ type: 'MX', priority: 0, exchange: '.' }],
    },
  });
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      'RelayNet 192.0.2.0/24',
      `RelayHost 127.0.0.1:${sink.port}`,
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'DNSTimeout 1s',
      'AllowDNSFailures no',
      'SMTPCB yes',
      'SMTPCBTimeout 2s',
      'SMTPCBCacheTTL 1h',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await dns?.close();
  await sink?.close();
  for (const t of [ok, refuse, stall, slow]) await t?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

let seq = 0;

async function probeFacts(
  from: string,
  local = '127.0.0.1',
): Promise<{ rcpt: string; ms: number; mailAt: number; facts: Record<string, string> }> {
  const tag = `p${++seq}`;
  const r = await dialogue(d.port, { local, from, to: `${u.name}+${tag}@a.example` });
  return { rcpt: r.rcpt, ms: r.ms.rcpt, mailAt: r.at.mail, facts: factVars(readEnv(u.home, tag)) };
}

/** When the MAIL-time facts (the probe among them) of the first session since `since` with MAIL FROM `from` were in: its mail.facts line's ts. */
async function mailFactsAt(from: string, since: number): Promise<number> {
  const mail = await d.waitLog(
    (l) => l.event === 'mail.decision' && l.from === from && Date.parse(String(l.ts)) >= since - 5,
  );
  const facts = await d.waitLog((l) => l.event === 'mail.facts' && l.sid === mail.sid, 3 * PROBE_TIMEOUT_MS);
  return Date.parse(String(facts.ts));
}

test(
  'accepted: SENDER_BOUNCERES is set and empty; the probe said EHLO Hostname, MAIL FROM:<>, RCPT TO:<sender>',
  { skip },
  async () => {
    const before = ok.connections;
    const r = await probeFacts('alice@ok.example');
    assert.equal(r.rcpt, '250 2.1.5 recipient ok');
    assert.deepEqual(r.facts, { ...SPF_NONE, SENDER_BOUNCERES: '' });
    assert.equal(ok.connections, before + 1);
    assert.deepEqual(ok.sessions.at(-1), { helo: 'mx.example.test', mailFrom: '', rcptTo: ['alice@ok.example'] });
  },
);

test('refused (550): SENDER_BOUNCERES is the reply, MAIL_ERROR 550 5.1.8', { skip }, async () => {
  const before = refuse.connections;
  const r = await probeFacts('nobody@refuse.example');
  assert.equal(r.facts.SENDER_BOUNCERES, '550 5.1.1 unknown user');
  // docs/facts.md: `550 5.1.8 bounces to SENDER are refused: REPLY`; the implementation writes
  // the sender in angle brackets (system-default.ts), which this assertion pins
  assert.deepEqual(r.facts, {
    ...SPF_NONE,
    SENDER_BOUNCERES: '550 5.1.1 unknown user',
    MAIL_ERROR: '550 5.1.8 bounces to <nobody@refuse.example> are refused: 550 5.1.1 unknown user',
  });
  assert.equal(refuse.connections, before + 1);
  assert.deepEqual(refuse.sessions.at(-1)?.rcptTo, ['nobody@refuse.example']);
});

test(
  'timing out: a 4xx within SMTPCBTimeout, never a MAIL_ERROR (even with AllowDNSFailures no)',
  { skip },
  async () => {
    const before = stall.connections;
    const since = Date.now();
    const r = await probeFacts('x@stall.example');
    // by order, not duration: the MAIL reply reached the client before the probe was given up
    const probed = await mailFactsAt('x@stall.example', since);
    assert.ok(r.mailAt < probed, `the MAIL reply came ${r.mailAt - probed} ms after the probe was given up`);
    // given up at SMTPCBTimeout, not waited for twice
    assert.ok(r.ms < 2 * PROBE_TIMEOUT_MS, `RCPT after ${r.ms} ms`);
    assert.equal(stall.connections, before + 1);
    assert.match(r.facts.SENDER_BOUNCERES ?? '(unset)', /^451 4\.4\.2 bounce probe timed out/);
    assert.deepEqual(r.facts, { ...SPF_NONE, SENDER_BOUNCERES: r.facts.SENDER_BOUNCERES });
  },
);

test(
  'cached: a second session makes no connection and sees the same values (accepted, refused, timed out)',
  { skip },
  async () => {
    const counts = [ok.connections, refuse.connections, stall.connections];
    const [a, b, c] = await Promise.all([
      probeFacts('alice@ok.example'),
      probeFacts('nobody@refuse.example'),
      probeFacts('x@stall.example'),
    ]);
    assert.deepEqual(a!.facts, { ...SPF_NONE, SENDER_BOUNCERES: '' });
    assert.equal(b!.facts.SENDER_BOUNCERES, '550 5.1.1 unknown user');
    assert.match(c!.facts.SENDER_BOUNCERES ?? '(unset)', /^451 4\.4\.2 bounce probe timed out/);
    // (the connection counts below show no new probe; a new one would take SMTPCBTimeout: the stall server never answers)
    assert.ok(c!.ms < PROBE_TIMEOUT_MS, `a cached temporary failure is answered at once (${c!.ms} ms)`);
    assert.deepEqual([ok.connections, refuse.connections, stall.connections], counts, 'no new connection');
    const hit = await d.waitLog(
      (l) => l.event === 'probe.done' && l.sender === 'alice@ok.example' && l.cached === true,
    );
    assert.equal(hit.result, 'accepted');
  },
);

test('shared: two concurrent sessions probing one sender make one connection', { skip }, async () => {
  const before = slow.connections;
  const [a, b] = await Promise.all([
    probeFacts('bob@slow.example', '127.0.0.30'),
    probeFacts('bob@slow.example', '127.0.0.31'),
  ]);
  assert.deepEqual(a!.facts, { ...SPF_NONE, SENDER_BOUNCERES: '' });
  assert.deepEqual(b!.facts, { ...SPF_NONE, SENDER_BOUNCERES: '' });
  assert.equal(slow.connections, before + 1);
  assert.deepEqual(slow.sessions.at(-1)?.rcptTo, ['bob@slow.example']);
});

test('MX preference order: an exchanger that refuses connections is skipped for the next', { skip }, async () => {
  const [okBefore, refuseBefore] = [ok.connections, refuse.connections];
  const r = await probeFacts('carol@pref.example');
  assert.deepEqual(r.facts, { ...SPF_NONE, SENDER_BOUNCERES: '' });
  assert.equal(ok.connections, okBefore + 1, 'preference 20 answered');
  assert.equal(refuse.connections, refuseBefore, 'preference 30 was not needed');
});

test("no MX: the domain's address is probed; null MX: refused without a connection", { skip }, async () => {
  const before = refuse.connections;
  const i = await probeFacts('dave@implicit.example');
  assert.equal(i.facts.SENDER_BOUNCERES, '550 5.1.1 unknown user');
  assert.equal(refuse.connections, before + 1);
  const n = await probeFacts('erin@nullmx.example');
  assert.equal(n.facts.SENDER_BOUNCERES, '556 5.1.10 nullmx.example accepts no mail (null MX)');
  assert.equal(
    n.facts.MAIL_ERROR,
    '550 5.1.8 bounces to <erin@nullmx.example> are refused: 556 5.1.10 nullmx.example accepts no mail (null MX)',
  );
});

test('no probe for the null sender or a sender of our own domain: SENDER_BOUNCERES unset', { skip }, async () => {
  const counts = [ok, refuse, stall, slow].map((t) => t.connections);
  const n = await probeFacts('');
  assert.deepEqual(n.facts, { SPF: 'none', SPF_HELO: 'none' });
  const own = await probeFacts(`${u.name}@a.example`);
  assert.deepEqual(own.facts, { SPF: 'none', SPF_HELO: 'none' });
  assert.deepEqual(
    [ok, refuse, stall, slow].map((t) => t.connections),
    counts,
  );
});

async function relay(from: string, tag: string): Promise<string> {
  const before = sink.messages.length;
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  const r = await c.send(
    from,
    [`${u.name}+${tag}@a.example`],
    `From: ${from}\r\nSubject: probe\r\n\r\nbody\r\n`,
    'client.example',
  );
  c.close();
  assert.match(r.last, /^250 2\.0\.0 /);
  assert.equal(sink.messages.length, before + 1);
  const text = sink.messages.at(-1)!.data.toString('latin1');
  const xav = /^X-Avenger: .*(?:\r\n[ \t].*)*/m.exec(text)?.[0] ?? '';
  return xav.replace(/\r\n[ \t]+/g, ' ');
}

test('X-Avenger: bounce-res=REPLY only when the probe did not accept', { skip }, async () => {
  const refused = await relay('nobody@refuse.example', `hdr${++seq}`);
  assert.match(refused, /; bounce-res=550 5\.1\.1 unknown user; spf=none$/);
  const accepted = await relay('alice@ok.example', `hdr${++seq}`);
  assert.doesNotMatch(accepted, /bounce-res/);
  assert.match(accepted, /; client-port=\d+; spf=none$/);
  const timedOut = await relay('x@stall.example', `hdr${++seq}`);
  assert.match(timedOut, /; bounce-res=451 4\.4\.2 bounce probe timed out[^;]*; spf=none$/);
});
