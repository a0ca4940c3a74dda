/**
 * HoldDomain delivery by MX, end to end (issue 20's follow-up): `HoldDomain DOMAIN USER` without a
 * site sends the domain's held mail to its mail exchangers, found with the daemon's own resolver
 * (DNSServer: a loopback DNS server of the test, never the machine's) — the MX records and the
 * exchangers' A records alike. MX delivery is port 25 (RFC 5321; no directive changes it), so the
 * exchangers are real SMTP sinks on port 25 of 127.0.0.121 … 127.0.0.123 (needs root).
 * Shown: two MX of different preferences, the lower one gets the mail while it is up (--flush);
 * down (nothing listening), the next one gets it (ETRN: the daemon's flush); byte-identical; a null
 * MX fails the recipient with 556 5.1.10 and a DSN reaches the sender; no MX but an A record: the
 * implicit MX (RFC 5321 §5.1); MX hosts without any address: 550 5.4.4 and a DSN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { asmtpdCli, heldBodies, queueJson, sendOne, until } from '../support/hold-cli.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

const unavailable =
  process.getuid?.() !== 0 ? 'the mail exchangers listen on port 25 of 127.0.0.12x: needs root' : null;
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const MX1 = '127.0.0.121';
const MX2 = '127.0.0.122';
const IMPLICIT = '127.0.0.123';
const SENDER = 'alice@sender.test';

let dns: DnsServer | null = null;
let mx1: Sink | null = null;
let mx2: Sink | null = null;
let implicit: Sink | null = null;
/** RelayHost: where the DSNs go (never the HoldDomain mail) */
let mta: Sink | null = null;
let d: Daemon | null = null;

before(async () => {
  if (unavailable) return;
  [mx1, mx2, implicit, mta] = await Promise.all([
    startSink({ kind: 'accept' }, 25, MX1),
    startSink({ kind: 'accept' }, 25, MX2),
    startSink({ kind: 'accept' }, 25, IMPLICIT),
    startSink({ kind: 'accept' }),
  ]);
  dns = await startDnsServer({
    doh: false,
    records: {
      // listed highest preference value first: the order of the answer is not what counts
      'pref.hold.test': [
        { type: 'MX', priority: 20, exchange: 'mx2.pref.hold.test' },
        { type: 'MX', priority: 10, exchange: 'mx1.pref.hold.test' },
      ],
      'mx1.pref.hold.test': [{ type: 'A', address: MX1 }],
      'mx2.pref.hold.test': [{ type: 'A', address: MX2 }],
      'null.hold.test': [{ type: 'MX', priority: 0, exchange: '.' }],
      // no MX, an A record: the domain itself is the exchanger
      'implicit.hold.test': [{ type: 'A', address: IMPLICIT }],
      // an MX whose host has no address at all
      'noaddr.hold.test': [{ type: 'MX', priority: 10, exchange: 'nowhere.noaddr.hold.test' }],
    },
  });
  d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.1/32',
      `RelayHost 127.0.0.1:${mta.port}`,
      'HoldDomain pref.hold.test site-pref',
      'HoldDomain null.hold.test site-null',
      'HoldDomain implicit.hold.test site-implicit',
      'HoldDomain noaddr.hold.test site-noaddr',
      'HoldRetry 1h 4h',
      'RelayTimeout 5s',
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'DNSTimeout 2s',
    ].join('\n'),
  });
});

after(async () => {
  await d?.stop();
  await dns?.close();
  for (const s of [mx1, mx2, implicit, mta]) await s?.close();
});

const exchangerConnections = (): number => [mx1, mx2, implicit].reduce((n, s) => n + (s?.connections ?? 0), 0);

async function holdFor(to: string, body: string): Promise<Buffer> {
  const before = await heldBodies(d!);
  assert.match(await sendOne(d!.port, SENDER, [to], body), /^250 /);
  const after = await heldBodies(d!);
  const added = [...after].filter(([id]) => !before.has(id));
  assert.equal(added.length, 1, 'one message held');
  return added[0]![1];
}

test(
  'two MX: the lower preference gets the held mail while it is up (asmtpd --flush DOMAIN), byte-identical; names resolved by DNSServer',
  { skip },
  async () => {
    const body = await holdFor('boss@pref.hold.test', 'Subject: by MX\r\n\r\nfirst\r\n.leading dot\r\n');
    dns!.clearQueries();
    const r = await asmtpdCli(d!, ['--flush', 'pref.hold.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^delivered 1 deferred 0 failed 0 busy 0/);
    assert.equal(mx1!.messages.length, 1);
    assert.deepEqual(mx1!.messages[0]!.to, ['boss@pref.hold.test']);
    assert.equal(mx1!.messages[0]!.from, SENDER);
    assert.ok(mx1!.messages[0]!.data.equals(body), 'byte-identical to the held copy');
    assert.equal(mx2!.connections, 0, 'the preference-20 exchanger was never contacted');
    const asked = dns!.queries.map((q) => `${q.type} ${q.name}`);
    assert.ok(asked.includes('MX pref.hold.test'), asked.join(', '));
    assert.ok(asked.includes('A mx1.pref.hold.test'), asked.join(', '));
    assert.deepEqual(await queueJson(d!, 'pref.hold.test'), []);
  },
);

test(
  'the preferred MX down (nothing listening on its port 25): the next one gets the mail, by ETRN (the daemon flushes)',
  { skip },
  async () => {
    await mx1!.close();
    const body = await holdFor('boss@pref.hold.test', 'Subject: second by MX\r\n\r\nsecond\r\n');
    const c = await SmtpClient.connect(d!.port);
    try {
      await c.greeting();
      await c.cmd('EHLO relaynet.test');
      assert.match(
        (await c.cmd('ETRN pref.hold.test')).last,
        /^253 2\.0\.0 OK, 1 pending messages for node pref\.hold\.test started/,
      );
    } finally {
      c.close();
    }
    await until('the second exchanger has the mail', () => mx2!.messages.length >= 1 || undefined);
    assert.equal(mx2!.messages.length, 1);
    assert.deepEqual(mx2!.messages[0]!.to, ['boss@pref.hold.test']);
    assert.ok(mx2!.messages[0]!.data.equals(body), 'byte-identical to the held copy');
    assert.equal(mx1!.messages.length, 1, 'the first exchanger has only the message of the first test');
    const failover = await d!.waitLog((l) => l.event === 'relay.failed' && String(l.relay).includes(`${MX1}:25`));
    assert.match(String(failover.retry), new RegExp(`${MX2.replace(/\./g, '\\.')}:25`));
    await d!.waitLog((l) => l.event === 'queue.delivered' && l.by === 'etrn');
    // the record and the file go after the log line: wait for the queue to say so
    const deadline = Date.now() + 10_000;
    while ((await queueJson(d!, 'pref.hold.test')).length > 0) {
      assert.ok(Date.now() < deadline, 'the queue empty for the domain');
      await new Promise((r) => setTimeout(r, 100));
    }
  },
);

test(
  'a null MX (MX 0 .): the recipient fails with 556 5.1.10 and a DSN reaches the sender; no connection',
  { skip },
  async () => {
    await holdFor('x@null.hold.test', 'Subject: to a null MX\r\nMessage-ID: <null-mx@sender.test>\r\n\r\nx\r\n');
    const before = exchangerConnections();
    const r = await asmtpdCli(d!, ['--flush', 'null.hold.test']);
    assert.match(r.stdout, /^delivered 0 deferred 0 failed 1 busy 0/, r.stderr);
    const [m] = await queueJson(d!, 'null.hold.test');
    assert.equal(m!.state, 'failed');
    assert.deepEqual(m!.failed, [
      { to: 'x@null.hold.test', reply: '556 5.1.10 domain null.hold.test accepts no mail (null MX, RFC 7505)' },
    ]);
    const dsn = await until('the DSN', () =>
      mta!.messages.find((x) => x.from === '' && /null-mx@/.test(x.data.toString())),
    );
    assert.deepEqual(dsn.to, [SENDER]);
    assert.match(
      dsn.data.toString(),
      /Final-Recipient: rfc822; x@null\.hold\.test\r\nAction: failed\r\nStatus: 5\.1\.10/,
    );
    assert.match(dsn.data.toString(), /Subject: to a null MX/);
    assert.equal(exchangerConnections(), before, 'nobody was contacted');
    assert.equal((await asmtpdCli(d!, ['--queue', '--delete', m!.id])).code, 0);
  },
);

test(
  'no MX but an A record: the domain itself is the mail exchanger (implicit MX, RFC 5321 §5.1)',
  { skip },
  async () => {
    const body = await holdFor('y@implicit.hold.test', 'Subject: implicit MX\r\n\r\ny\r\n');
    const r = await asmtpdCli(d!, ['--flush', 'implicit.hold.test']);
    assert.match(r.stdout, /^delivered 1 deferred 0 failed 0 busy 0/, r.stderr);
    assert.equal(implicit!.messages.length, 1);
    assert.deepEqual(implicit!.messages[0]!.to, ['y@implicit.hold.test']);
    assert.ok(implicit!.messages[0]!.data.equals(body), 'byte-identical to the held copy');
    assert.deepEqual(await queueJson(d!, 'implicit.hold.test'), []);
  },
);

test(
  'an MX host without any address: 550 5.4.4 (reported as an error, RFC 5321 §5.1) and a DSN',
  { skip },
  async () => {
    await holdFor('z@noaddr.hold.test', 'Subject: no address\r\nMessage-ID: <no-address@sender.test>\r\n\r\nz\r\n');
    const r = await asmtpdCli(d!, ['--flush', 'noaddr.hold.test']);
    assert.match(r.stdout, /^delivered 0 deferred 0 failed 1 busy 0/, r.stderr);
    const [m] = await queueJson(d!, 'noaddr.hold.test');
    assert.deepEqual(m!.failed, [
      { to: 'z@noaddr.hold.test', reply: '550 5.4.4 no mail exchanger of noaddr.hold.test has an address (A or AAAA)' },
    ]);
    const dsn = await until('the DSN', () =>
      mta!.messages.find((x) => x.from === '' && /no-address@/.test(x.data.toString())),
    );
    assert.match(
      dsn.data.toString(),
      /Final-Recipient: rfc822; z@noaddr\.hold\.test\r\nAction: failed\r\nStatus: 5\.4\.4/,
    );
  },
);
