/**
 * Client facts end to end (issue 5): the reverse name as a script sees it — CLIENT_NAME,
 * CLIENT_PTR, CLIENT_DNSFAIL and the MAIL_ERROR a temporary failure gives — for confirmed,
 * unconfirmed, absent and failing reverse DNS, over both resolvers: `system` (c-ares over UDP)
 * and `tangerine` (DNS over HTTP), against one loopback DNS server (dns2).
 *
 * Each client case connects from its own 127.0.0.x address; the recipient's script writes its
 * environment to a file (test/support/facts.ts) and accepts. Needs root (test accounts).
 *
 * Timing (robust on a loaded machine): no absolute bound on the banner. A PTR answer held back by
 * the DNS server for SLOW_PTR_MS must not hold up the banner: each banner arrives before that answer
 * is even sent (an order of events, not a duration), and the RCPT then gets the late name. The
 * hanging PTR is given up at DNSTimeout: its RCPT is measured beside the no-PTR client's, which
 * runs the same script under the same load.
 *
 * A hostile PTR (issue 13): CR/LF, a NUL, `$(touch …)` and backticks in the name served by the
 * loopback server are dropped (only host names are taken; CLIENT_PTR_INVALID=1), nothing runs, and
 * a script's reject stays a 550 (the NUL used to make the runner refuse the request: a 451).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, reverseName, type DnsServer } from '../support/dns-server.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, factVars, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
let etc: string;
let dns: DnsServer;
let system: Daemon;
let doh: Daemon;

/**
 * DNSTimeout of the daemons of the cases: what a never-answered PTR costs each run over tangerine
 * (generous: a loaded machine's loopback answers must come in time). The system resolver gives a
 * lookup up after about 1 s whatever this says once it has seen fast answers (c-ares 1.34 times a
 * try by the latency it saw, and the daemon asks for one try); its first lookups get the whole time.
 */
const TIMEOUT_MS = 3000;
/** how long the DNS server holds back the slow PTR answers; their daemons' DNSTimeout is longer */
const SLOW_PTR_MS = 3000; // under c-ares' ~5 s cap on one answer (dns/system-backend.ts)
const SLOW_DNS_TIMEOUT = '30s';
const MARK = join(tmpdir(), `asmtpd-ptr-pwned-${process.pid}`);
const HOSTILE_PTR = `evil\r\nX-Injected: yes.$(touch ${MARK}).\`touch ${MARK}\`.nul\0byte.example`;

before(async () => {
  if (unavailable) return;
  u = createUser('rdns');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  writeScript(u, 'rcpt+no', 'reject "550 5.7.1 not from you, ${CLIENT_PTR-no name}"');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  dns = await startDnsServer({
    records: {
      // confirmed: the PTR name's A record is the client
      [reverseName('127.0.0.10')]: [{ type: 'PTR', domain: 'host10.example.test' }],
      'host10.example.test': [{ type: 'A', address: '127.0.0.10' }],
      // unconfirmed: the PTR name points elsewhere
      [reverseName('127.0.0.11')]: [{ type: 'PTR', domain: 'host11.example.test' }],
      'host11.example.test': [{ type: 'A', address: '192.0.2.11' }],
      // the PTR lookup fails (SERVFAIL, REFUSED)
      [reverseName('127.0.0.12')]: [{ type: 'SERVFAIL' }],
      [reverseName('127.0.0.19')]: [{ type: 'REFUSED' }],
      // 127.0.0.13: no PTR at all (NXDOMAIN)
      // a PTR whose confirming A lookup fails
      [reverseName('127.0.0.14')]: [{ type: 'PTR', domain: 'host14.example.test' }],
      'host14.example.test': [{ type: 'SERVFAIL' }],
      // two PTR names: the first does not confirm, the second does
      [reverseName('127.0.0.15')]: [
        { type: 'PTR', domain: 'alias15.example.test' },
        { type: 'PTR', domain: 'host15.example.test' },
      ],
      'alias15.example.test': [{ type: 'A', address: '192.0.2.15' }],
      'host15.example.test': [{ type: 'A', address: '127.0.0.15' }],
      // the PTR lookup never answers
      [reverseName('127.0.0.16')]: [{ type: 'HANG' }],
      // hostile PTR names: alone, and before a valid name that confirms
      [reverseName('127.0.0.20')]: [{ type: 'PTR', domain: HOSTILE_PTR }],
      [reverseName('127.0.0.21')]: [
        { type: 'PTR', domain: HOSTILE_PTR },
        { type: 'PTR', domain: 'host21.example.test' },
      ],
      'host21.example.test': [{ type: 'A', address: '127.0.0.21' }],
      // the PTR answer comes SLOW_PTR_MS late, then confirms (one client per resolver)
      [reverseName('127.0.0.22')]: [
        { type: 'DELAY', ms: SLOW_PTR_MS },
        { type: 'PTR', domain: 'host22.example.test' },
      ],
      'host22.example.test': [{ type: 'A', address: '127.0.0.22' }],
      [reverseName('127.0.0.23')]: [
        { type: 'DELAY', ms: SLOW_PTR_MS },
        { type: 'PTR', domain: 'host23.example.test' },
      ],
      'host23.example.test': [{ type: 'A', address: '127.0.0.23' }],
      // a PTR name without any address record (NODATA for A)
      [reverseName('127.0.0.17')]: [{ type: 'PTR', domain: 'host17.example.test' }],
      'host17.example.test': [{ type: 'TXT', data: 'no address here' }],
    },
  });
  [system, doh] = await startPair(`${TIMEOUT_MS / 1000}s`);
});

/** A daemon over each resolver, with this DNSTimeout; if one fails to start, the other is stopped. */
async function startPair(dnsTimeout: string): Promise<[Daemon, Daemon]> {
  const common = [
    `LocalDomain a.example`,
    `PasswdFile ${join(etc, 'passwd')}`,
    'Separator +',
    'RelayNet 192.0.2.0/24',
    `DNSTimeout ${dnsTimeout}`,
    'AllowDNSFailures no',
  ];
  const [a, b] = await Promise.allSettled([
    startDaemon({
      etcDir: etc,
      conf: [...common, 'DNSResolver system', `DNSServer 127.0.0.1:${dns.udp.port}`].join('\n'),
    }),
    startDaemon({
      etcDir: etc,
      conf: [...common, 'DNSResolver tangerine', 'DNSProtocol http', `DNSServer ${dns.doh}`].join('\n'),
    }),
  ]);
  if (a.status === 'fulfilled' && b.status === 'fulfilled') return [a.value, b.value];
  if (a.status === 'fulfilled') await a.value.stop();
  if (b.status === 'fulfilled') await b.value.stop();
  throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
}

after(async () => {
  if (unavailable) return;
  await system?.stop();
  await doh?.stop();
  await dns?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
  rmSync(MARK, { force: true });
});

interface Case {
  ip: string;
  what: string;
  facts: Record<string, string>;
}

/** SPF of remote.example and of the HELO client.example: no records → none. */
const SPF_NONE = { SPF: 'none', SPF_HELO: 'none' };
const dnsFail = (ip: string): Record<string, string> => ({
  MAIL_ERROR: `451 4.4.3 temporary DNS failure: reverse lookup of ${ip}`,
});

const CASES: Case[] = [
  {
    ip: '127.0.0.10',
    what: 'confirmed',
    facts: { CLIENT_NAME: 'host10.example.test', CLIENT_PTR: 'host10.example.test', ...SPF_NONE },
  },
  { ip: '127.0.0.11', what: 'unconfirmed (A elsewhere)', facts: { CLIENT_PTR: 'host11.example.test', ...SPF_NONE } },
  { ip: '127.0.0.17', what: 'unconfirmed (no A record)', facts: { CLIENT_PTR: 'host17.example.test', ...SPF_NONE } },
  { ip: '127.0.0.13', what: 'no PTR', facts: { ...SPF_NONE } },
  // /etc/hosts names 127.0.0.1 (localhost): the reverse name is what DNS says, not the hosts file
  { ip: '127.0.0.1', what: 'no PTR in DNS, a name in /etc/hosts', facts: { ...SPF_NONE } },
  {
    ip: '127.0.0.15',
    what: 'second PTR name confirmed',
    facts: { CLIENT_NAME: 'host15.example.test', CLIENT_PTR: 'alias15.example.test', ...SPF_NONE },
  },
  { ip: '127.0.0.12', what: 'PTR SERVFAIL', facts: { CLIENT_DNSFAIL: '1', ...SPF_NONE, ...dnsFail('127.0.0.12') } },
  { ip: '127.0.0.19', what: 'PTR REFUSED', facts: { CLIENT_DNSFAIL: '1', ...SPF_NONE, ...dnsFail('127.0.0.19') } },
  {
    ip: '127.0.0.14',
    what: 'confirming A SERVFAIL',
    facts: { CLIENT_PTR: 'host14.example.test', CLIENT_DNSFAIL: '1', ...SPF_NONE, ...dnsFail('127.0.0.14') },
  },
  {
    ip: '127.0.0.16',
    what: 'PTR never answers',
    facts: { CLIENT_DNSFAIL: '1', ...SPF_NONE, ...dnsFail('127.0.0.16') },
  },
  {
    ip: '127.0.0.20',
    what: 'hostile PTR (CR, LF, NUL, $(…), backticks)',
    facts: { CLIENT_PTR_INVALID: '1', ...SPF_NONE },
  },
  {
    ip: '127.0.0.21',
    what: 'hostile PTR, then a confirmed name',
    facts: {
      CLIENT_NAME: 'host21.example.test',
      CLIENT_PTR: 'host21.example.test',
      CLIENT_PTR_INVALID: '1',
      ...SPF_NONE,
    },
  },
];

let seq = 0;

/** The client whose reverse lookup ends at once (NXDOMAIN): the RCPT time of the same script and load. */
const CONTROL_IP = '127.0.0.13';

/**
 * Runs every case at once (each is its own client address; the hanging one bounds the time) and
 * compares all of them in one deepEqual, so a failure shows every case that differs. No RCPT waits
 * for its facts much more than DNSTimeout beyond the control's RCPT (the lookup that never answers
 * is given up, not waited for: at DNSTimeout at the latest).
 */
async function runCases(d: Daemon, label: string): Promise<void> {
  const results = new Map<Case, { rcpt: string; ms: number; env: Record<string, string> }>();
  await Promise.all(
    CASES.map(async (c) => {
      const tag = `${label}${++seq}`;
      const r = await dialogue(d.port, {
        local: c.ip,
        from: 'someone@remote.example',
        to: `${u.name}+${tag}@a.example`,
      });
      results.set(c, { rcpt: r.rcpt, ms: r.ms.rcpt, env: readEnv(u.home, tag) });
    }),
  );
  const control = results.get(CASES.find((c) => c.ip === CONTROL_IP)!)!;
  const got: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  for (const c of CASES) {
    const r = results.get(c)!;
    const key = `${c.ip} ${c.what}`;
    got[key] = {
      rcpt: r.rcpt,
      CLIENT_IP: r.env.CLIENT_IP,
      facts: factVars(r.env),
      rcptBounded: r.ms < control.ms + 2 * TIMEOUT_MS || `RCPT after ${r.ms} ms, the control's ${control.ms} ms`,
    };
    want[key] = { rcpt: '250 2.1.5 recipient ok', CLIENT_IP: c.ip, facts: c.facts, rcptBounded: true };
  }
  assert.deepEqual(got, want, label);
}

test(
  'system resolver (UDP): confirmed, unconfirmed, absent, failing (SERVFAIL, REFUSED, no answer) reverse DNS',
  { skip },
  async () => {
    await runCases(system, 'sys');
    const l = await system.waitLog((x) => x.event === 'session.facts' && x.dnsfail === true);
    assert.equal(l.name, null);
  },
);

test('tangerine over DoH (http): the same values', { skip }, async () => {
  await runCases(doh, 'doh');
});

test(
  'a PTR answer held back for seconds holds up no banner (both resolvers): the banner comes before the answer is sent, the RCPT gets the late name',
  { skip },
  async (t) => {
    // DNSTimeout well beyond the delay: the late answer is used, so a banner that waited for the
    // lookup could only come after the DNS server sent it
    const [sys, dohSlow] = await startPair(SLOW_DNS_TIMEOUT);
    try {
      const runs: Array<[Daemon, string]> = [
        [sys, '127.0.0.22'],
        [dohSlow, '127.0.0.23'],
      ];
      await Promise.all(
        runs.map(async ([d, ip]) => {
          const tag = `slow${++seq}`;
          const r = await dialogue(d.port, {
            local: ip,
            from: 'someone@remote.example',
            to: `${u.name}+${tag}@a.example`,
          });
          const ptr = dns.queries.find((q) => q.type === 'PTR' && q.name === reverseName(ip));
          assert.ok(ptr?.answeredAt !== undefined, `${ip}: the PTR was asked and answered`);
          t.diagnostic(
            `${ip}: banner ${r.ms.banner} ms after the connect, ${ptr.answeredAt - r.at.banner} ms before the PTR answer (held ${SLOW_PTR_MS} ms)`,
          );
          assert.ok(
            r.at.banner < ptr.answeredAt,
            `${ip}: the banner came ${r.at.banner - ptr.answeredAt} ms after the PTR answer was sent`,
          );
          assert.equal(r.rcpt, '250 2.1.5 recipient ok');
          const host = `host${ip.split('.')[3]}.example.test`;
          assert.deepEqual(factVars(readEnv(u.home, tag)), { CLIENT_NAME: host, CLIENT_PTR: host, ...SPF_NONE }, ip);
        }),
      );
    } finally {
      await Promise.all([sys.stop(), dohSlow.stop()]);
    }
  },
);

test(
  "a hostile PTR executes nothing and leaves a script's reject a 550, over both resolvers; the log says ptr_invalid",
  { skip },
  async () => {
    for (const d of [system, doh]) {
      const r = await dialogue(d.port, {
        local: '127.0.0.20',
        from: 'someone@remote.example',
        to: `${u.name}+no@a.example`,
      });
      assert.equal(r.rcpt, '550 5.7.1 not from you, no name');
      await d.waitLog((l) => l.event === 'session.facts' && l.ptr_invalid === true);
    }
    assert.equal(existsSync(MARK), false, 'nothing was executed');
  },
);

test('the PTR and confirming lookups went to the loopback server, as PTR and A queries', { skip }, async () => {
  // c-ares' getHostByAddr would answer 127.0.0.x from /etc/hosts and report SERVFAIL as "not
  // found": the reverse name must come from a PTR query
  const asked = new Set(dns.queries.map((q) => `${q.type} ${q.name}`));
  for (const name of ['host10.example.test', 'host11.example.test', 'alias15.example.test', 'host15.example.test'])
    assert.ok(asked.has(`A ${name}`), name);
  assert.ok(asked.has(`PTR ${reverseName('127.0.0.10')}`));
  assert.ok(!asked.has('AAAA host10.example.test'), 'an IPv4 client is confirmed with A records only');
});

test('records changed between sessions: a name confirmed now, after the PTR changed', { skip }, async () => {
  dns.add(reverseName('127.0.0.18'), { type: 'PTR', domain: 'Old18.Example.Test' });
  const tag1 = `chg${++seq}`;
  await dialogue(system.port, {
    local: '127.0.0.18',
    from: 'someone@remote.example',
    to: `${u.name}+${tag1}@a.example`,
  });
  assert.deepEqual(factVars(readEnv(u.home, tag1)), { CLIENT_PTR: 'old18.example.test', ...SPF_NONE });
  dns.add('old18.example.test', { type: 'A', address: '127.0.0.18' });
  const tag2 = `chg${++seq}`;
  await dialogue(system.port, {
    local: '127.0.0.18',
    from: 'someone@remote.example',
    to: `${u.name}+${tag2}@a.example`,
  });
  assert.deepEqual(factVars(readEnv(u.home, tag2)), {
    CLIENT_NAME: 'old18.example.test',
    CLIENT_PTR: 'old18.example.test',
    ...SPF_NONE,
  });
});
