import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandLabel, createMetrics } from './metrics.js';

/** The samples of a text exposition: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

test('commandLabel: the verb of the command line, lower case; anything else is other', () => {
  const cases: [string, string][] = [
    ['EHLO client.test', 'ehlo'],
    ['helo x', 'helo'],
    ['MAIL FROM:<a@b.test>', 'mail'],
    ['rcpt to:<a@b.test>', 'rcpt'],
    ['DATA', 'data'],
    ['RSET', 'rset'],
    ['NOOP', 'noop'],
    ['QUIT', 'quit'],
    ['VRFY root', 'vrfy'],
    ['EXPN list', 'expn'],
    ['HELP', 'help'],
    ['STARTTLS', 'starttls'],
    ['AUTH PLAIN', 'auth'],
    ['MAILX FROM:<a@b.test>', 'other'],
    ['STARTTLSX', 'other'],
    ['DATA2', 'other'],
    ['GET / HTTP/1.1', 'other'],
    ['', 'other'],
    ['\u0000EHLO', 'other'],
  ];
  for (const [line, label] of cases) assert.equal(commandLabel(line), label, line);
});

test('each recording function moves its own series, by the labels given', async () => {
  const m = createMetrics();
  m.setVersion('1.2.3');
  m.connectionAccepted();
  m.connectionAccepted();
  m.connectionRefused('max-per-ip');
  m.reply('connect', 220);
  m.reply('rcpt', 550);
  m.reply('rcpt', 554);
  m.reply('data', 354);
  m.reply('message', 250);
  m.rcptDecision('accepted', 'script');
  m.rcptDecision('rejected', 'route');
  m.rcptDecision('rejected', 'route');
  m.scriptRun('accept', 40);
  m.fact('reverse', 3, false);
  m.fact('spf', 2, true);
  m.relay('accepted', 120);
  m.rcptVerify('cached-valid');
  m.rcptVerify('cached-valid');
  m.rcptVerify('invalid');
  m.rcptVerifyCache(true);
  m.rcptVerifyCache(true);
  m.rcptVerifyCache(false);
  m.rcptVerifyBackend('invalid', 4);
  m.message('accepted');
  m.dnsLookup('PTR', false);
  m.dnsLookup('TXT', true);
  m.dnsCacheHit('negative');
  m.auth('failed');
  m.auth('ok');
  const s = samples(await m.render());
  const expected: [string, number][] = [
    ['asmtpd_info{version="1.2.3"}', 1],
    ['asmtpd_connections_total', 2],
    ['asmtpd_connections_refused_total{reason="max-per-ip"}', 1],
    ['asmtpd_connections_open', 0],
    ['asmtpd_auth_total{result="failed"}', 1],
    ['asmtpd_auth_total{result="ok"}', 1],
    ['asmtpd_replies_total{command="connect",class="2xx"}', 1],
    ['asmtpd_replies_total{command="rcpt",class="5xx"}', 2],
    ['asmtpd_replies_total{command="data",class="3xx"}', 1],
    ['asmtpd_replies_total{command="message",class="2xx"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="accepted",source="script"}', 1],
    ['asmtpd_rcpt_decisions_total{outcome="rejected",source="route"}', 2],
    ['asmtpd_script_run_seconds_count{outcome="accept"}', 1],
    ['asmtpd_script_run_seconds_sum{outcome="accept"}', 0.04],
    ['asmtpd_script_run_seconds_bucket{le="0.025",outcome="accept"}', 0],
    ['asmtpd_script_run_seconds_bucket{le="0.05",outcome="accept"}', 1],
    ['asmtpd_fact_seconds_count{kind="reverse"}', 1],
    ['asmtpd_fact_seconds_count{kind="spf"}', 1],
    ['asmtpd_fact_failures_total{kind="spf"}', 1],
    ['asmtpd_relay_seconds_count{result="accepted"}', 1],
    ['asmtpd_rcpt_verify_total{result="cached-valid"}', 2],
    ['asmtpd_rcpt_verify_total{result="invalid"}', 1],
    ['asmtpd_rcpt_verify_cache_total{lookup="hit"}', 2],
    ['asmtpd_rcpt_verify_cache_total{lookup="miss"}', 1],
    ['asmtpd_rcpt_verify_backend_seconds_count{answer="invalid"}', 1],
    ['asmtpd_rcpt_verify_backend_seconds_sum{answer="invalid"}', 0.004],
    ['asmtpd_relay_seconds_sum{result="accepted"}', 0.12],
    ['asmtpd_messages_total{outcome="accepted"}', 1],
    ['asmtpd_dns_lookups_total{type="PTR"}', 1],
    ['asmtpd_dns_lookups_total{type="TXT"}', 1],
    ['asmtpd_dns_failures_total{type="TXT"}', 1],
    ['asmtpd_dns_cache_hits_total{cache="negative"}', 1],
    ['asmtpd_hold_queue_messages', 0],
  ];
  for (const [key, value] of expected) assert.equal(s.get(key), value, key);
  // a label set never used has no series (and a failure of a kind that did not fail none either)
  assert.equal(s.get('asmtpd_fact_failures_total{kind="reverse"}'), undefined);
  // the process figures only once the listener asks for them
  assert.equal(s.get('process_cpu_user_seconds_total'), undefined);
});

test('scrape-time figures come from the sources given to watch(); a failing one is NaN', async () => {
  const m = createMetrics();
  let open = 3;
  m.watch({ connections: () => open, holdQueue: async () => 7 });
  let s = samples(await m.render());
  assert.equal(s.get('asmtpd_connections_open'), 3);
  assert.equal(s.get('asmtpd_hold_queue_messages'), 7);
  open = 1;
  m.watch({ holdQueue: () => Promise.reject(new Error('EACCES')) });
  s = samples(await m.render());
  assert.equal(s.get('asmtpd_connections_open'), 1, 'watch() keeps the sources it is not given');
  assert.ok(Number.isNaN(s.get('asmtpd_hold_queue_messages')));
});

test('startProcessMetrics adds the process and Node figures, once', async () => {
  const m = createMetrics();
  m.startProcessMetrics();
  m.startProcessMetrics();
  const text = await m.render();
  const s = samples(text);
  assert.ok((s.get('process_cpu_user_seconds_total') ?? -1) >= 0);
  assert.ok((s.get('process_resident_memory_bytes') ?? 0) > 0);
  assert.equal(text.match(/^# TYPE process_cpu_user_seconds_total /gm)?.length, 1);
  // gauges named like counters are left out (promtool check metrics refuses them)
  assert.match(text, /^# TYPE nodejs_active_handles gauge$/m);
  assert.doesNotMatch(text, /^nodejs_active_\w+_total/m);
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
});

test('two sets of figures are independent', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.connectionAccepted();
  assert.equal(samples(await a.render()).get('asmtpd_connections_total'), 1);
  assert.equal(samples(await b.render()).get('asmtpd_connections_total'), 0);
});
