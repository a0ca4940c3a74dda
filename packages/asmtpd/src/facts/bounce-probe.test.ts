/**
 * The bounce probe against real SMTP servers on loopback addresses (127.0.25.x port 25: the tests
 * run as root) with an in-memory DNS zone and a real state database.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureLogger } from '../testing/relay.js';
import { openStateDb } from '../store/state-db.js';
import {
  createBounceProber,
  MAX_ADDRESSES,
  PURGE_INTERVAL_MS,
  TEMPFAIL_TTL_MS,
  type BounceProber,
} from './bounce-probe.js';
import { fakeResolver, startScripted, startTarget, type Target, type Zone } from '../testing/bounce-probe.js';
import { oneLineReply } from './bounce-session.js';

const HOSTNAME = 'probe.asmtpd.test';
const DAY = 86_400_000;
let lastIp = 0;
/** a loopback address of its own for each target */
const nextIp = (): string => `127.0.25.${++lastIp}`;
/** addresses where nothing listens (connection refused) */
const DEAD = ['127.0.25.201', '127.0.25.202', '127.0.25.203', '127.0.25.204', '127.0.25.205', '127.0.25.206'];

function setup(t: TestContext, zone: Zone, o: { timeoutMs?: number; cacheTtlMs?: number; port?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-probe-'));
  const db = openStateDb(join(dir, 'state.sqlite'));
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = { now: 1_700_000_000_000 };
  const log = captureLogger();
  const resolver = fakeResolver(zone);
  const prober: BounceProber = createBounceProber({
    hostname: HOSTNAME,
    timeoutMs: o.timeoutMs ?? 5000,
    cacheTtlMs: o.cacheTtlMs ?? DAY,
    db,
    resolver,
    log,
    now: () => clock.now,
    ...(o.port !== undefined ? { port: o.port } : {}),
  });
  return { prober, clock, log, resolver, db };
}

async function target(t: TestContext, ...args: Parameters<typeof startTarget>): Promise<Target> {
  const server = await startTarget(...args);
  t.after(() => server.close());
  return server;
}

const mxTo = (domain: string, ip: string, priority = 10): Zone => ({
  mx: { [domain]: [{ exchange: `mx.${domain}`, priority }] },
  a: { [`mx.${domain}`]: [ip] },
});

test('accepted: EHLO with our name, STARTTLS, MAIL FROM:<>, RCPT TO:<sender>, QUIT, never DATA', async (t) => {
  const mx = await target(t, nextIp());
  const { prober, log } = setup(t, mxTo('accept.test', mx.ip));
  const r = await prober.probe('alice@accept.test');
  assert.deepEqual(r, { kind: 'accepted', reply: '', cached: false, scope: 'address' });
  assert.deepEqual(
    [mx.helo, mx.secure, mx.mailFrom, mx.rcptTo, mx.dataCommands],
    [[HOSTNAME], [true], [''], ['alice@accept.test'], 0],
  );
  const line = log.lines.find((l) => l.event === 'probe.done');
  assert.equal(line?.level, 'info');
  assert.deepEqual(
    { ...line?.fields, ms: 0 },
    {
      sender: 'alice@accept.test',
      result: 'accepted',
      reply: '',
      cached: false,
      ms: 0,
      scope: 'address',
      mx: 'mx.accept.test',
      ip: mx.ip,
    },
  );
});

test('refused at RCPT: the exact reply, kept for that address only', async (t) => {
  const mx = await target(t, nextIp(), { rcpt: (a) => (a.startsWith('ghost@') ? [550, '5.1.1 unknown user'] : null) });
  const { prober } = setup(t, mxTo('rcpt.test', mx.ip));
  assert.deepEqual(await prober.probe('ghost@rcpt.test'), {
    kind: 'refused',
    reply: '550 5.1.1 unknown user',
    cached: false,
    scope: 'address',
  });
  assert.deepEqual(await prober.probe('ghost@RCPT.test'), {
    kind: 'refused',
    reply: '550 5.1.1 unknown user',
    cached: true,
    scope: 'address',
  });
  assert.equal(
    (await prober.probe('bob@rcpt.test')).kind,
    'accepted',
    'another address of the domain is probed on its own',
  );
  assert.equal(mx.connections, 2);
});

test('refused at MAIL FROM:<>: domain scope, another sender of the domain answered without connecting', async (t) => {
  const mx = await target(t, nextIp(), { mailFrom: [550, '5.7.1 no bounces accepted here'] });
  const { prober, resolver } = setup(t, mxTo('nobounce.test', mx.ip));
  assert.deepEqual(await prober.probe('a@nobounce.test'), {
    kind: 'refused',
    reply: '550 5.7.1 no bounces accepted here',
    cached: false,
    scope: 'domain',
  });
  assert.deepEqual(mx.rcptTo, [], 'no RCPT after a refused MAIL');
  const lookups = resolver.lookups.length;
  assert.deepEqual(await prober.probe('b@nobounce.test'), {
    kind: 'refused',
    reply: '550 5.7.1 no bounces accepted here',
    cached: true,
    scope: 'domain',
  });
  assert.equal(mx.connections, 1);
  assert.equal(resolver.lookups.length, lookups, 'no DNS lookup either');
});

test('refused greeting (554): domain scope', async (t) => {
  const mx = await target(t, nextIp(), { greeting: [554, '5.7.1 go away'] });
  const { prober } = setup(t, mxTo('greet.test', mx.ip));
  assert.deepEqual(await prober.probe('x@greet.test'), {
    kind: 'refused',
    reply: '554 5.7.1 go away',
    cached: false,
    scope: 'domain',
  });
  assert.equal((await prober.probe('y@greet.test')).cached, true);
  assert.equal(mx.connections, 1);
});

test('HELO when EHLO is refused; the transcript has no DATA', async (t) => {
  const ip = nextIp();
  const answers: Record<string, string> = {
    EHLO: '502 5.5.1 no EHLO',
    HELO: '250 hello',
    MAIL: '250 ok',
    RCPT: '553 5.1.3 bad mailbox',
    QUIT: '221 bye',
  };
  const server = await startScripted(
    ip,
    '220 old.test SMTP',
    (line) => answers[line.split(' ')[0] ?? ''] ?? '500 what',
  );
  t.after(() => server.close());
  const { prober } = setup(t, mxTo('old.test', ip));
  assert.deepEqual(await prober.probe('z@old.test'), {
    kind: 'refused',
    reply: '553 5.1.3 bad mailbox',
    cached: false,
    scope: 'address',
  });
  await waitFor(() => server.closed === 1);
  assert.deepEqual(server.transcript, [
    [`EHLO ${HOSTNAME}`, `HELO ${HOSTNAME}`, 'MAIL FROM:<>', 'RCPT TO:<z@old.test>', 'QUIT'],
  ]);
});

test('a target that never greets: tempfail 451 4.4.2 within the timeout, connection closed', async (t) => {
  const ip = nextIp();
  const silent = await startScripted(ip, null, () => null);
  t.after(() => silent.close());
  const { prober, log } = setup(t, mxTo('silent.test', ip), { timeoutMs: 700 });
  const started = Date.now();
  const r = await prober.probe('s@silent.test');
  const took = Date.now() - started;
  // the whole-probe deadline or the session's own timeout (both the same time left) answers first
  assert.deepEqual(
    { ...r, reply: r.reply.replace(/ waiting for .*$/, '') },
    { kind: 'tempfail', reply: '451 4.4.2 bounce probe timed out', cached: false, scope: 'address' },
  );
  assert.ok(took >= 650 && took < 700 + 1500, `took ${took} ms`);
  await waitFor(() => silent.closed === 1);
  assert.equal(log.lines.find((l) => l.event === 'probe.done')?.level, 'warn');
});

test('a target that stalls after the greeting: tempfail within the timeout', async (t) => {
  const ip = nextIp();
  const stall = await startScripted(ip, '220 stall.test ESMTP', () => null);
  t.after(() => stall.close());
  const { prober } = setup(t, mxTo('stall.test', ip), { timeoutMs: 700 });
  const started = Date.now();
  const r = await prober.probe('s@stall.test');
  const took = Date.now() - started;
  assert.equal(r.kind, 'tempfail');
  assert.match(r.reply, /^451 4\.4\.2 bounce probe timed out/);
  assert.ok(took < 700 + 1500, `took ${took} ms`);
  assert.deepEqual(stall.transcript, [[`EHLO ${HOSTNAME}`]]);
  await waitFor(() => stall.closed === 1);
});

test('a cached answer makes no connection; it expires after cacheTtlMs (injected clock)', async (t) => {
  const mx = await target(t, nextIp());
  const { prober, clock, log } = setup(t, mxTo('cache.test', mx.ip), { cacheTtlMs: 60_000 });
  assert.equal((await prober.probe('c@cache.test')).cached, false);
  clock.now += 59_999;
  assert.deepEqual(await prober.probe('c@cache.test'), { kind: 'accepted', reply: '', cached: true, scope: 'address' });
  assert.equal(mx.connections, 1);
  assert.equal(log.lines.filter((l) => l.event === 'probe.done').length, 2, 'one line per probe, cached ones too');
  clock.now += 1;
  assert.equal((await prober.probe('c@cache.test')).cached, false);
  assert.equal(mx.connections, 2);
});

test('expired entries are deleted by a later probe (at most once per interval)', async (t) => {
  const mx = await target(t, nextIp());
  const { prober, clock, db } = setup(t, mxTo('purge.test', mx.ip), { cacheTtlMs: 60_000 });
  await prober.probe('one@purge.test');
  clock.now += PURGE_INTERVAL_MS;
  await prober.probe('two@purge.test');
  assert.equal(db.bounceCache.purgeExpired(clock.now), 0, 'the first entry was already purged by the prober');
  clock.now += 120_000;
  await prober.probe('three@purge.test');
  assert.equal(db.bounceCache.purgeExpired(clock.now), 1, 'not purged again within the interval');
});

test('a state database that fails is logged (store.error) and the probe goes on', async (t) => {
  const mx = await target(t, nextIp());
  const { prober, db, log } = setup(t, mxTo('nodb.test', mx.ip));
  db.close();
  assert.deepEqual(await prober.probe('x@nodb.test'), { kind: 'accepted', reply: '', cached: false, scope: 'address' });
  assert.ok(log.lines.some((l) => l.event === 'store.error' && l.level === 'warn'));
});

test('a sender that cannot be probed (no domain, CR/LF): tempfail without a connection or a lookup', async (t) => {
  const { prober, resolver } = setup(t, {});
  for (const sender of ['postmaster', 'a@x.test\r\nDATA']) {
    assert.deepEqual(await prober.probe(sender), {
      kind: 'tempfail',
      reply: '451 4.1.7 the sender address cannot be probed',
      cached: false,
    });
  }
  assert.deepEqual(resolver.lookups, []);
});

test('a temporary failure is cached as temporary, for at most 10 minutes', async (t) => {
  const mx = await target(t, nextIp(), { rcpt: () => [450, '4.2.0 greylisted, come back later'] });
  const { prober, clock } = setup(t, mxTo('grey.test', mx.ip), { cacheTtlMs: DAY });
  assert.deepEqual(await prober.probe('g@grey.test'), {
    kind: 'tempfail',
    reply: '450 4.2.0 greylisted, come back later',
    cached: false,
    scope: 'address',
  });
  clock.now += TEMPFAIL_TTL_MS - 1;
  assert.deepEqual(await prober.probe('g@grey.test'), {
    kind: 'tempfail',
    reply: '450 4.2.0 greylisted, come back later',
    cached: true,
    scope: 'address',
  });
  assert.equal(mx.connections, 1);
  clock.now += 1;
  assert.equal((await prober.probe('g@grey.test')).cached, false);
  assert.equal(mx.connections, 2);
});

test('concurrent probes of one address share one connection', async (t) => {
  const mx = await target(t, nextIp(), { rcptDelayMs: 300, rcpt: () => [550, '5.1.1 nobody'] });
  const { prober } = setup(t, mxTo('shared.test', mx.ip));
  const results = await Promise.all([
    prober.probe('s@shared.test'),
    prober.probe('s@shared.test'),
    prober.probe('s@SHARED.test'),
  ]);
  for (const r of results)
    assert.deepEqual(r, { kind: 'refused', reply: '550 5.1.1 nobody', cached: false, scope: 'address' });
  assert.equal(mx.connections, 1);
  assert.deepEqual(mx.rcptTo, ['s@shared.test']);
});

test('MX preference order, and the next exchanger when one refuses connections', async (t) => {
  const second = await target(t, nextIp());
  const third = await target(t, nextIp());
  const { prober, log } = setup(t, {
    mx: {
      'order.test': [
        { exchange: 'c.order.test', priority: 30 },
        { exchange: 'b.order.test.', priority: 20 },
        { exchange: 'a.order.test', priority: 5 },
      ],
    },
    a: { 'a.order.test': [DEAD[0]!], 'b.order.test': [second.ip], 'c.order.test': [third.ip] },
  });
  assert.equal((await prober.probe('o@order.test')).kind, 'accepted');
  assert.deepEqual([second.connections, third.connections], [1, 0]);
  assert.equal(log.lines.find((l) => l.event === 'probe.done')?.fields.mx, 'b.order.test');
});

test(`at most ${MAX_ADDRESSES} addresses are tried`, async (t) => {
  const late = await target(t, nextIp());
  const hosts = [...DEAD, late.ip].map((ip, i) => ({ exchange: `mx${i}.many.test`, ip, priority: i }));
  const { prober } = setup(t, {
    mx: { 'many.test': hosts.map(({ exchange, priority }) => ({ exchange, priority })) },
    a: Object.fromEntries(hosts.map((h) => [h.exchange, [h.ip]])),
  });
  const r = await prober.probe('m@many.test');
  assert.equal(r.kind, 'tempfail');
  assert.match(r.reply, /^451 4\.4\.1 no answer from mx4\.many\.test \[127\.0\.25\.205\]: ECONNREFUSED$/);
  assert.equal(late.connections, 0);
});

test('implicit MX: no MX records, the domain address', async (t) => {
  const host = await target(t, nextIp());
  const { prober, resolver } = setup(t, { mx: {}, a: { 'implicit.test': [host.ip] } });
  assert.equal((await prober.probe('i@implicit.test')).kind, 'accepted');
  assert.equal(host.connections, 1);
  assert.deepEqual(resolver.lookups.slice(0, 2), ['MX implicit.test', 'A implicit.test']);
});

test('no MX and no address, or exchangers without an address: refused 550 5.4.4 for the domain', async (t) => {
  const { prober } = setup(t, {
    mx: { 'noaddr.test': [], 'dangling.test': [{ exchange: 'gone.dangling.test', priority: 10 }] },
  });
  assert.deepEqual(await prober.probe('n@noaddr.test'), {
    kind: 'refused',
    reply: '550 5.4.4 noaddr.test has no mail exchanger and no address',
    cached: false,
    scope: 'domain',
  });
  assert.deepEqual(await prober.probe('d@dangling.test'), {
    kind: 'refused',
    reply: '550 5.4.4 no address for the mail exchangers of dangling.test',
    cached: false,
    scope: 'domain',
  });
});

test('NXDOMAIN: refused 550 5.1.2 for the domain, cached without asking DNS again', async (t) => {
  const { prober, resolver } = setup(t, {});
  assert.deepEqual(await prober.probe('x@nx.test'), {
    kind: 'refused',
    reply: '550 5.1.2 nx.test: no such domain',
    cached: false,
    scope: 'domain',
  });
  assert.deepEqual(await prober.probe('y@nx.test'), {
    kind: 'refused',
    reply: '550 5.1.2 nx.test: no such domain',
    cached: true,
    scope: 'domain',
  });
  assert.deepEqual(resolver.lookups, ['MX nx.test']);
});

test('null MX (RFC 7505): refused 556 5.1.10 for the domain', async (t) => {
  const { prober } = setup(t, { mx: { 'null.test': [{ exchange: '', priority: 0 }] } });
  const r = await prober.probe('n@null.test');
  assert.deepEqual(
    { ...r, reply: r.reply.slice(0, 10) },
    { kind: 'refused', reply: '556 5.1.10', cached: false, scope: 'domain' },
  );
});

test('temporary DNS failures are tempfail 451 4.4.3, never refusals', async (t) => {
  const { prober } = setup(t, {
    mx: { 'servfail.test': { error: 'ESERVFAIL' }, 'mxfail.test': [{ exchange: 'mx.mxfail.test', priority: 1 }] },
    a: { 'mx.mxfail.test': { error: 'ETIMEOUT' } },
  });
  assert.deepEqual(await prober.probe('a@servfail.test'), {
    kind: 'tempfail',
    reply: '451 4.4.3 temporary DNS failure looking up servfail.test (ESERVFAIL)',
    cached: false,
    scope: 'address',
  });
  assert.deepEqual(await prober.probe('b@mxfail.test'), {
    kind: 'tempfail',
    reply: '451 4.4.3 temporary DNS failure looking up mx.mxfail.test (ETIMEOUT)',
    cached: false,
    scope: 'address',
  });
  assert.equal((await prober.probe('a@servfail.test')).cached, true, 'kept as temporary');
});

test('every exchanger refusing connections: tempfail 451 4.4.1', async (t) => {
  const { prober } = setup(t, mxTo('down.test', DEAD[1]!));
  assert.deepEqual(await prober.probe('d@down.test'), {
    kind: 'tempfail',
    reply: `451 4.4.1 no answer from mx.down.test [${DEAD[1]}]: ECONNREFUSED`,
    cached: false,
    scope: 'address',
  });
});

test('another port (the `port` option)', async (t) => {
  const mx = await target(t, '127.0.0.1', {}, 0);
  const { prober } = setup(t, mxTo('port.test', '127.0.0.1'), { port: mx.port });
  assert.equal((await prober.probe('p@port.test')).kind, 'accepted');
  assert.equal(mx.connections, 1);
});

test('formatReply: code, enhanced code once, the text of every line', () => {
  assert.equal(
    oneLineReply('550-5.1.1 The email account does not exist.\n550-5.1.1 Please check\n550 5.1.1 https://x.test/help'),
    '550 5.1.1 The email account does not exist. Please check https://x.test/help',
  );
  assert.equal(oneLineReply('451 try again'), '451 try again');
  assert.equal(oneLineReply('250 2.1.5'), '250 2.1.5');
});

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
