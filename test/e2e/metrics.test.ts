/**
 * MetricsListen (issue 16, item 5): the daemon's Prometheus endpoint scraped while mail flows.
 * One daemon with a user whose scripts accept (rcpt), reject (rcpt+no) and fail (rcpt+crash), a
 * user without scripts (the system default decides), a recording
 * downstream, the tangerine resolver against a loopback DoH server (so the DNS caches are ours to
 * count), MaxClientsPerIP 1 and HoldOnFailure yes. The test scrapes, sends mail — accepted by a
 * script and by the system default, refused by a script, a failing script, postmaster, an unknown
 * user, a refused relay, a repeated recipient (the session's cache), a connection over the limit,
 * a message the downstream defers (held) — scrapes again and checks each counter moved by exactly
 * what was sent; `promtool check metrics` (Debian's prometheus) must pass on the text.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { startDaemon, testWorkers, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';
import { reverseName, startDnsServer, type DnsServer } from '../support/dns-server.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
if (!PROMTOOL && process.env.CI) throw new Error('promtool is missing (Debian package prometheus, .ci/run)');
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
/** a user without scripts: the system default decides */
let v: TestUser;
let sink: Sink;
let dns: DnsServer;
let d: Daemon;
let metricsPort: number;

before(async () => {
  if (unavailable) return;
  u = createUser('metrics');
  writeScript(u, 'rcpt', 'accept');
  writeScript(u, 'rcpt+no', 'reject "not here"');
  writeScript(u, 'rcpt+crash', 'exit 3');
  v = createUser('metricsv');
  sink = await startSink();
  dns = await startDnsServer({
    udp: false,
    records: {
      [reverseName('127.0.0.1')]: [{ type: 'PTR', domain: 'client.metrics.test', ttl: 300 }],
      'client.metrics.test': [{ type: 'A', address: '127.0.0.1', ttl: 300 }],
    },
    // NXDOMAIN under test. (the senders' SPF) is remembered: the negative cache
    soa: { zone: 'test', ttl: 300, minimum: 300 },
  });
  metricsPort = await freePort();
  d = await startDaemon({
    conf: [
      `RelayHost 127.0.0.1:${sink.port}`,
      // the loopback client is outside RelayNet: a relay attempt is refused
      'RelayNet 10.99.0.0/16',
      'Separator +',
      'MaxClientsPerIP 1',
      'HoldOnFailure yes',
      'DNSResolver tangerine',
      `DNSServer ${dns.doh}`,
      'DNSProtocol http',
      `MetricsListen 127.0.0.1:${metricsPort}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  await dns?.close();
  if (u) removeUser(u);
  if (v) removeUser(v);
});

function scrape(path = '/metrics'): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: metricsPort, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', text }));
    });
    req.on('error', reject);
    req.end();
  });
}

type Samples = Map<string, number>;
function samples(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Scrape until `done` holds (what a session records after its last reply may lag by a moment). */
async function scrapeUntil(done: (s: Samples) => boolean, timeoutMs = 10_000): Promise<{ s: Samples; text: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { text } = await scrape();
    const s = samples(text);
    if (done(s) || Date.now() > deadline) return { s, text };
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('metrics move by exactly the mail sent, and promtool accepts the text', { skip }, async () => {
  const first = await scrape();
  assert.equal(first.status, 200);
  assert.match(first.type, /^text\/plain; version=0\.0\.4/);
  const s0 = samples(first.text);
  const at = (s: Samples, key: string): number => s.get(key) ?? 0;
  const delta = (s: Samples, key: string): number => at(s, key) - at(s0, key);
  const me = `${u.name}@mx.example.test`;

  // 1. accepted, refused by the script, a refused relay, the same recipient again (cached)
  const c1 = await SmtpClient.connect(d.port);
  assert.match((await c1.greeting()).last, /^220 /);
  const during = await scrapeUntil((s) => at(s, 'asmtpd_connections_open') === 1);
  assert.equal(at(during.s, 'asmtpd_connections_open'), 1, 'one connection open');
  assert.equal((await c1.cmd('EHLO client.test')).code, 250);
  assert.equal((await c1.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c1.cmd(`RCPT TO:<${me}>`)).code, 250);
  assert.equal((await c1.cmd(`RCPT TO:<${u.name}+no@mx.example.test>`)).last, '550 5.7.1 not here');
  assert.equal((await c1.cmd('RCPT TO:<someone@elsewhere.test>')).last, '550 5.7.1 relaying denied');
  assert.equal((await c1.cmd(`RCPT TO:<${me}>`)).code, 250);
  assert.match((await c1.cmd(`RCPT TO:<${u.name}+crash@mx.example.test>`)).last, /^451 4\.3\.0 /);
  assert.equal((await c1.cmd(`RCPT TO:<${v.name}@mx.example.test>`)).code, 250);
  assert.equal((await c1.cmd('RCPT TO:<postmaster@mx.example.test>')).code, 250);
  assert.equal((await c1.cmd('RCPT TO:<nobody-here@mx.example.test>')).last, '550 5.1.1 no such user here');
  assert.equal((await c1.cmd('DATA')).code, 354);
  c1.write('Subject: one\r\n\r\nhello\r\n.\r\n');
  assert.match((await c1.reply()).last, /^250 2\.0\.0 Ok: queued as /);
  assert.equal((await c1.cmd('QUIT')).code, 221);
  await d.waitLog((l) => l.event === 'session.end' && l.messages === 1);

  // 2. a second connection from the same address while one is open: 421 (MaxClientsPerIP 1)
  const c2 = await SmtpClient.connect(d.port);
  assert.match((await c2.greeting()).last, /^220 /);
  const c3 = await SmtpClient.connect(d.port);
  assert.match((await c3.greeting()).last, /^421 4\.7\.0 /);
  await c3.waitClosed();
  assert.equal((await c2.cmd('QUIT')).code, 221);
  await c2.waitClosed();
  // the server's side of c2 is closed too (MaxClientsPerIP counts it until then)
  await scrapeUntil((s) => at(s, 'asmtpd_connections_open') === 0);

  // 3. the downstream defers the message: held (HoldOnFailure), the client gets 250
  sink.mode = { kind: 'reject-data', code: 451, text: 'try later' };
  const c4 = await SmtpClient.connect(d.port);
  assert.match((await c4.greeting()).last, /^220 /);
  assert.match((await c4.send('sender@remote.test', [me], 'Subject: two\r\n\r\nhello\r\n')).last, /^250 /);
  assert.equal((await c4.cmd('QUIT')).code, 221);
  await c4.waitClosed();
  sink.mode = { kind: 'accept' };

  const expected: [string, number][] = [
    ['asmtpd_connections_total', 4],
    ['asmtpd_connections_refused_total{reason="max-per-ip"}', 1],
    ['asmtpd_replies_total{command="connect",class="2xx"}', 3],
    ['asmtpd_replies_total{command="connect",class="4xx"}', 1],
    ['asmtpd_replies_total{command="ehlo",class="2xx"}', 2],
    ['asmtpd_replies_total{command="mail",class="2xx"}', 2],
    ['asmtpd_replies_total{command="rcpt",class="2xx"}', 5],
    ['asmtpd_replies_total{command="rcpt",class="4xx"}', 1],
    ['asmtpd_replies_total{command="rcpt",class="5xx"}', 3],
    ['asmtpd_replies_total{command="data",class="3xx"}', 2],
    ['asmtpd_replies_total{command="message",class="2xx"}', 2],
    ['asmtpd_replies_total{command="quit",class="2xx"}', 3],
    ['asmtpd_rcpt_decisions_total{outcome="accepted",source="script"}', 2],
    ['asmtpd_rcpt_decisions_total{outcome="rejected",source="script"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="deferred",source="script"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="rejected",source="route"}', 2],
    ['asmtpd_rcpt_decisions_total{outcome="accepted",source="route"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="accepted",source="system-default"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="accepted",source="cache"}', 1],
    ['asmtpd_script_run_seconds_count{outcome="accept"}', 2],
    ['asmtpd_script_run_seconds_count{outcome="reject"}', 1],
    ['asmtpd_script_run_seconds_count{outcome="failed"}', 1],
    ['asmtpd_relay_seconds_count{result="accepted"}', 1],
    ['asmtpd_relay_seconds_count{result="held"}', 1],
    ['asmtpd_messages_total{outcome="accepted"}', 2],
    // reverse DNS for each admitted connection, SPF of MAIL FROM and of HELO for each transaction
    ['asmtpd_fact_seconds_count{kind="reverse"}', 3],
    ['asmtpd_fact_seconds_count{kind="spf"}', 2],
    ['asmtpd_fact_seconds_count{kind="spf_helo"}', 2],
    ['asmtpd_dns_lookups_total{type="PTR"}', 3],
    // the second and third connection's PTR and A (FCrDNS) come from the cache
    ['asmtpd_dns_cache_hits_total{cache="answer"}', 4],
    // the second transaction's SPF lookups (TXT remote.test, TXT client.test): NXDOMAIN, remembered
    ['asmtpd_dns_cache_hits_total{cache="negative"}', 2],
  ];
  // the DNS caches are per SMTP process: with Workers N (ASMTPD_TEST_WORKERS) a connection on
  // another worker than the first misses them, so their hits are at most the one process's
  const perProcess = (key: string): boolean => testWorkers() > 1 && key.startsWith('asmtpd_dns_cache_hits_total');
  const { s, text } = await scrapeUntil(
    (s) =>
      expected.every(([key, n]) => perProcess(key) || delta(s, key) >= n) && at(s, 'asmtpd_connections_open') === 0,
  );
  for (const [key, n] of expected) {
    if (perProcess(key)) assert.ok(delta(s, key) <= n, key);
    else assert.equal(delta(s, key), n, key);
  }
  assert.equal(at(s, 'asmtpd_connections_open'), 0);
  assert.equal(at(s, 'asmtpd_hold_queue_messages'), 1, 'the held message is in the hold queue');
  assert.equal(delta(s, 'asmtpd_fact_failures_total{kind="reverse"}'), 0);
  assert.equal(delta(s, 'asmtpd_dns_failures_total{type="PTR"}'), 0);
  assert.ok(at(s, 'asmtpd_script_run_seconds_sum{outcome="accept"}') > 0);
  assert.ok(at(s, 'asmtpd_relay_seconds_sum{result="accepted"}') > 0);
  assert.match(text, /^asmtpd_info\{version="[0-9.]+"\} 1$/m);
  // process figures of the SMTP process (prom-client's defaults), served as DaemonUser
  assert.ok(at(s, 'process_cpu_user_seconds_total') > 0);
  assert.ok(at(s, 'process_resident_memory_bytes') > 0);
  assert.ok(s.has('nodejs_eventloop_lag_seconds'));
  assert.equal((await scrape('/')).status, 404);

  if (!PROMTOOL) return;
  const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  assert.equal(check.stdout + check.stderr, '', 'no lint findings');
});

test('a MetricsListen address in use: the daemon does not start, and says why', { skip }, async () => {
  await assert.rejects(
    startDaemon({ conf: `MetricsListen 127.0.0.1:${metricsPort}` }),
    /cannot listen on MetricsListen 127\.0\.0\.1:\d+: .*EADDRINUSE/,
  );
});
