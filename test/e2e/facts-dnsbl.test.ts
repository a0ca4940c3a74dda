/**
 * Client facts end to end (issue 5): DNSBLs as a script sees them — RBL_SCORE, RBL_LISTED,
 * RBL_REASON and MAIL_ERROR — for listed (TXT reason, configured reason, default reason),
 * unlisted, error-coded (127.255.255.254), SERVFAIL, out-of-range and timing-out lists; and that
 * slow facts delay nothing they should not: with a PTR and a DNSBL that never answer, the banner,
 * the MAIL reply and a whole postmaster session come before the daemon gives the lookups up (its
 * session.facts line, at DNSTimeout: an order of events, not an absolute bound, so a loaded
 * machine's slow replies cannot fail it while DNSTimeout is long beside them), and a policy RCPT is
 * answered after that and not a second DNSTimeout later. One loopback DNS server (UDP,
 * `DNSResolver system`).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, rblName, reverseName, type DnsServer, type Records } from '../support/dns-server.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, factVars, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
let etc: string;
let dns: DnsServer;
let d: Daemon;

const LISTED_BOTH = '127.0.0.20';
const LISTED_ONE = '127.0.0.21';
const UNLISTED = '127.0.0.22';
const FRACTION = '127.0.0.23';
const SLOW = '127.0.0.24';
const CLIENTS = [LISTED_BOTH, LISTED_ONE, UNLISTED, FRACTION, SLOW];
const TXT_REASON = 'spam source; see http://bl1.test/q?127.0.0.20';
/**
 * DNSTimeout: what the never-answering list and PTR cost; long beside a loaded machine's replies
 * (the system resolver gives them up after about 1 s once warm, whatever this says: c-ares 1.34
 * times a try by the latency it saw; the order checks below hold whenever they are given up)
 */
const TIMEOUT_MS = 4000;

function records(): Records {
  const r: Records = {
    [rblName(LISTED_BOTH, 'bl1.test')]: [
      { type: 'A', address: '127.0.0.2' },
      { type: 'TXT', data: TXT_REASON },
      { type: 'DELAY', ms: 300 },
    ],
    [rblName(LISTED_BOTH, 'bl2.test')]: [{ type: 'A', address: '127.0.0.3' }],
    [rblName(LISTED_ONE, 'bl1.test')]: [{ type: 'A', address: '127.0.0.2' }],
    [rblName(FRACTION, 'bl1.test')]: [{ type: 'A', address: '127.0.0.4' }],
    [rblName(FRACTION, 'half.test')]: [{ type: 'A', address: '127.0.0.2' }],
    // the slow client: its PTR never answers either
    [reverseName(SLOW)]: [{ type: 'HANG' }],
  };
  for (const ip of CLIENTS) {
    // every client: a list refusing the resolver, a dead list, a broken list, an out-of-range answer
    r[rblName(ip, 'refuser.test')] = [{ type: 'A', address: '127.255.255.254' }];
    r[rblName(ip, 'dead.test')] = [{ type: 'HANG' }];
    r[rblName(ip, 'broken.test')] = [{ type: 'SERVFAIL' }];
    r[rblName(ip, 'outside.test')] = [{ type: 'A', address: '10.0.0.2' }];
  }
  return r;
}

before(async () => {
  if (unavailable) return;
  u = createUser('rbl');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  dns = await startDnsServer({ doh: false, records: records() });
  d = await startDaemon({
    etcDir: etc,
    conf: [
      `LocalDomain a.example`,
      `PasswdFile ${passwd}`,
      'Separator +',
      'RelayNet 192.0.2.0/24',
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      `DNSTimeout ${TIMEOUT_MS / 1000}s`,
      'AllowDNSFailures no',
      'RBL bl1.test',
      'RBL bl2.test 2 configured reason',
      'RBL half.test 0.5',
      'RBL refuser.test 5',
      'RBL dead.test 5',
      'RBL broken.test 5',
      'RBL outside.test 5',
      'RBLThreshold 3',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await dns?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

let seq = 0;

async function factsOf(ip: string): Promise<{
  rcpt: string;
  facts: Record<string, string>;
  ms: { banner: number; mail: number; rcpt: number };
  at: { banner: number; mail: number; rcpt: number };
}> {
  const tag = `t${++seq}`;
  const r = await dialogue(d.port, { local: ip, from: 's@remote.example', to: `${u.name}+${tag}@a.example` });
  return { rcpt: r.rcpt, facts: factVars(readEnv(u.home, tag)), ms: r.ms, at: r.at };
}

/**
 * When the daemon had the connect facts (reverse DNS, the lists) of the newest session from `ip`
 * that began at or after `since`: the ts of its session.facts line (a lookup that never answers
 * ends there, at DNSTimeout).
 */
async function factsSettledAt(ip: string, since: number): Promise<number> {
  const connect = await d.waitLog(
    (l) => l.event === 'session.connect' && l.ip === ip && Date.parse(String(l.ts)) >= since - 5,
  );
  const facts = await d.waitLog((l) => l.event === 'session.facts' && l.sid === connect.sid, 2 * TIMEOUT_MS + 10_000);
  return Date.parse(String(facts.ts));
}

const SPF_NONE = { SPF: 'none', SPF_HELO: 'none' };

test(
  'listed, unlisted, error-coded, failing and timing-out lists: the variables and MAIL_ERROR',
  { skip },
  async () => {
    const [both, one, none, fraction] = await Promise.all([LISTED_BOTH, LISTED_ONE, UNLISTED, FRACTION].map(factsOf));
    // bl1 answers last (DELAY): the zones still come in configuration order
    assert.deepEqual(both!.facts, {
      ...SPF_NONE,
      RBL_SCORE: '3',
      RBL_LISTED: 'bl1.test bl2.test',
      RBL_REASON: `${TXT_REASON}; configured reason`,
      MAIL_ERROR: `550 5.7.1 listed by bl1.test, bl2.test: ${TXT_REASON}; configured reason`,
    });
    // below RBLThreshold: listed, but no system-default rejection; no TXT, no configured reason
    assert.deepEqual(one!.facts, {
      ...SPF_NONE,
      RBL_SCORE: '1',
      RBL_LISTED: 'bl1.test',
      RBL_REASON: 'listed by bl1.test',
    });
    // a refusing, dead, broken or out-of-range list lists nobody and is no DNS failure (no 451)
    assert.deepEqual(none!.facts, { ...SPF_NONE, RBL_SCORE: '0' });
    assert.deepEqual(fraction!.facts, {
      ...SPF_NONE,
      RBL_SCORE: '1.5',
      RBL_LISTED: 'bl1.test half.test',
      RBL_REASON: 'listed by bl1.test; listed by half.test',
    });
    for (const r of [both, one, none, fraction]) {
      assert.equal(r!.rcpt, '250 2.1.5 recipient ok', 'the script accepts whatever MAIL_ERROR says');
      // the dead list is given up at DNSTimeout (not once per query, nor c-ares' own retries)
      assert.ok(r!.ms.rcpt < 2 * TIMEOUT_MS, `RCPT within DNSTimeout + margin: ${r!.ms.rcpt} ms`);
    }
  },
);

test('the problems are logged as rbl.error, by kind', { skip }, async () => {
  const kinds = new Map<string, string>();
  await d.waitLog((l) => {
    if (l.event === 'rbl.error') kinds.set(String(l.zone), String(l.kind));
    return kinds.size >= 4;
  });
  assert.deepEqual(Object.fromEntries([...kinds].sort()), {
    'broken.test': 'lookup',
    'dead.test': 'lookup',
    'outside.test': 'ignored',
    'refuser.test': 'refused',
  });
  // a refusal says why (127.255.255.254: a public resolver) and what to do about it
  const refusal = d.logs.find((l) => l.event === 'rbl.error' && l.zone === 'refuser.test');
  assert.equal(refusal?.detail, '127.255.255.254');
  assert.equal(refusal?.reason, 'query through a public or open resolver');
  assert.equal(
    refusal?.hint,
    'the DNSBL refuses this resolver: a public resolver or over quota; use a local caching resolver such as unbound',
  );
});

test('the lists are asked for d.c.b.a.ZONE, all at connect', { skip }, async () => {
  const asked = new Set(dns.queries.map((q) => `${q.type} ${q.name}`));
  for (const zone of [
    'bl1.test',
    'bl2.test',
    'half.test',
    'refuser.test',
    'dead.test',
    'broken.test',
    'outside.test',
  ]) {
    assert.ok(asked.has(`A ${rblName(UNLISTED, zone)}`), zone);
  }
  assert.ok(asked.has(`TXT ${rblName(LISTED_BOTH, 'bl1.test')}`), 'the reason of a listing comes from TXT');
  assert.ok(!asked.has(`TXT ${rblName(UNLISTED, 'bl1.test')}`), 'no TXT lookup without a listing');
});

test(
  'slow facts: the banner, MAIL and a postmaster RCPT are immediate; a policy RCPT waits at most DNSTimeout',
  { skip },
  async (t) => {
    dns.clearQueries();
    const since = Date.now();
    const r = await factsOf(SLOW);
    const settled = await factsSettledAt(SLOW, since);
    t.diagnostic(
      `facts given up ${settled - since} ms after the connect; banner ${r.at.banner - settled}, ` +
        `MAIL ${r.at.mail - settled}, RCPT ${r.at.rcpt - settled} ms from then`,
    );
    assert.ok(r.at.banner < settled, `the banner came ${r.at.banner - settled} ms after the facts were given up`);
    assert.ok(r.at.mail < settled, `the MAIL reply came ${r.at.mail - settled} ms after the facts were given up`);
    // the policy RCPT waited for them, and not for a second DNSTimeout
    assert.ok(r.at.rcpt >= settled, 'the RCPT waited for the facts');
    assert.ok(r.at.rcpt - settled < TIMEOUT_MS, `RCPT ${r.at.rcpt - settled} ms after the facts were given up`);
    // the facts were awaited: the hanging PTR is a temporary failure, the dead list lists nobody
    assert.deepEqual(r.facts, {
      ...SPF_NONE,
      CLIENT_DNSFAIL: '1',
      RBL_SCORE: '0',
      MAIL_ERROR: `451 4.4.3 temporary DNS failure: reverse lookup of ${SLOW}`,
    });
    assert.equal(r.rcpt, '250 2.1.5 recipient ok');
    const ptrAsked = dns.queries.find((q) => q.type === 'PTR' && q.name === reverseName(SLOW));
    assert.ok(ptrAsked, 'the PTR was asked');

    // postmaster: no facts, no waiting, even though the lookups hang: the whole session (QUIT
    // answered) ends before the daemon gives them up
    const t0 = Date.now();
    const p = await dialogue(d.port, { local: SLOW, from: 's@remote.example', to: 'postmaster@a.example' });
    const ended = Date.now();
    const pSettled = await factsSettledAt(SLOW, t0);
    assert.match(p.rcpt, /^250 /);
    assert.ok(ended < pSettled, `the postmaster session ended ${ended - pSettled} ms after the facts were given up`);
  },
);
