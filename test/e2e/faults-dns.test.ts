/**
 * Faults (issue 7, item 4): the DNS server is slow, silent or failing for EVERY lookup, while a
 * burst of sessions arrives. The per-case behaviour (one client's PTR hangs or SERVFAILs, one
 * list times out) is in facts-reverse-dns, facts-dnsbl, facts-spf and facts-system-default;
 * this suite adds the whole server going bad under load, for both resolvers.
 *
 * One loopback DNS server (test/support/dns-server.ts, UDP and DoH) holds every name the daemons
 * ask — the clients' PTR names, their host names (A), the SPF TXT of the sender domain and of the
 * HELO name — and a mode turns all of them at once into: `slow` (each answer delayed 200 ms, a
 * reverse lookup 400 ms, under DNSTimeout 5s), `silent` (no answer at all), `servfail`. After each
 * burst every query the server saw must be one of those names, so "every lookup" really was every
 * lookup.
 *
 * The recipient has no script (a PasswdFile account without ~/.avenger): the provisional accept
 * applies MAIL_ERROR, so AllowDNSFailures no shows as `451 4.4.3` at RCPT, yes as 250.
 * Each burst: 40 concurrent sessions from 10 client addresses; with DNS silent every banner and MAIL
 * reply comes well before DNSTimeout after the connect (one that waited could not), every
 * RCPT within 1.5 × DNSTimeout, every QUIT gets 221, and afterwards the daemons are alive, logged
 * no daemon.error, and accept again with DNS back to normal. The bounds are relative to DNSTimeout,
 * which is long (5 s) so that a loaded machine's slow greetings stay far from it. (The system
 * resolver gives a silent lookup up after about 1 s whatever DNSTimeout says: c-ares 1.34 times a
 * try by the latency it saw, and the daemon asks for one try; over tangerine DNSTimeout holds.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, reverseName, type DnsServer, type Records, type RR } from '../support/dns-server.js';
import { SmtpClient } from '../support/smtp-client.js';

const CLIENTS = Array.from({ length: 10 }, (_, i) => `127.0.0.${60 + i}`);
const SESSIONS = 40;
/** each answer's delay in `slow`: a reverse lookup (PTR, then A) takes twice that, well under DNSTimeout */
const SLOW_MS = 200;
const TIMEOUT_MS = 5000;
const SENDER_DOMAIN = 'remote.example';
const HELO = 'client.example';

let dns: DnsServer;
let etc: string;
let systemStrict: Daemon;
let systemLenient: Daemon;
let dohStrict: Daemon;

type Mode = 'normal' | 'slow' | 'silent' | 'servfail';

/** Every name a session makes the daemon look up, with the answers of `normal`. */
function zone(mode: Mode): Records {
  const data: Record<string, RR[]> = {
    [SENDER_DOMAIN]: [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' }],
    [HELO]: [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' }],
  };
  CLIENTS.forEach((ip, i) => {
    data[reverseName(ip)] = [{ type: 'PTR', domain: `host${i}.clients.example` }];
    data[`host${i}.clients.example`] = [{ type: 'A', address: ip }];
  });
  const out: Records = {};
  for (const [name, rrs] of Object.entries(data)) {
    if (mode === 'normal') out[name] = rrs;
    else if (mode === 'slow') out[name] = [...rrs, { type: 'DELAY', ms: SLOW_MS }];
    else out[name] = [{ type: mode === 'silent' ? 'HANG' : 'SERVFAIL' }];
  }
  return out;
}
const KNOWN = new Set(Object.keys(zone('normal')).map((n) => n.toLowerCase()));

before(async () => {
  dns = await startDnsServer({ records: zone('normal') });
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  // no home directory, so no script: the system default (MAIL_ERROR) decides
  writeFileSync(passwd, 'dnsuser:x:54321:54321::/nonexistent/dnsuser:/bin/sh\n');
  chmodSync(passwd, 0o644);
  const common = [
    'LocalDomain a.example',
    `PasswdFile ${passwd}`,
    'RelayNet 192.0.2.0/24',
    `DNSTimeout ${TIMEOUT_MS / 1000}s`,
  ];
  const system = ['DNSResolver system', `DNSServer 127.0.0.1:${dns.udp.port}`];
  // allSettled: when one fails to start, the others are still assigned, so after() stops them
  // (a daemon left running keeps this test file from ever ending)
  const started = await Promise.allSettled([
    startDaemon({ etcDir: etc, conf: [...common, ...system, 'AllowDNSFailures no'].join('\n') }),
    startDaemon({ etcDir: etc, conf: [...common, ...system, 'AllowDNSFailures yes'].join('\n') }),
    startDaemon({
      etcDir: etc,
      conf: [
        ...common,
        'DNSResolver tangerine',
        'DNSProtocol http',
        `DNSServer ${dns.doh}`,
        'AllowDNSFailures no',
      ].join('\n'),
    }),
  ]);
  const ok = (i: number): Daemon | undefined => {
    const r = started[i]!;
    return r.status === 'fulfilled' ? r.value : undefined;
  };
  [systemStrict, systemLenient, dohStrict] = [ok(0)!, ok(1)!, ok(2)!];
  for (const r of started) if (r.status === 'rejected') throw r.reason;
});

after(async () => {
  for (const d of [systemStrict, systemLenient, dohStrict]) await d?.stop();
  await dns?.close();
  if (etc) rmSync(etc, { recursive: true, force: true });
});

interface SessionResult {
  banner: string;
  mail: string;
  rcpt: string;
  quit: string;
  /** banner and mail: since the connect (the lookups start there); rcpt: since the command */
  ms: { banner: number; mail: number; rcpt: number };
}

async function session(port: number, ip: string): Promise<SessionResult> {
  const t0 = Date.now();
  const c = await SmtpClient.connect(port, '127.0.0.1', ip);
  try {
    const banner = (await c.greeting()).last;
    const tb = Date.now() - t0;
    await c.cmd(`EHLO ${HELO}`);
    const mail = (await c.cmd(`MAIL FROM:<s@${SENDER_DOMAIN}>`)).last;
    const tm = Date.now() - t0;
    const t = Date.now();
    const rcpt = (await c.cmd('RCPT TO:<dnsuser@a.example>')).last;
    const tr = Date.now() - t;
    const quit = (await c.cmd('QUIT')).last;
    return { banner, mail, rcpt, quit, ms: { banner: tb, mail: tm, rcpt: tr } };
  } finally {
    c.close();
  }
}

/** A burst of SESSIONS concurrent sessions; returns the distinct RCPT replies and the slowest times. */
async function burst(
  d: Daemon,
  mode: Mode,
): Promise<{ rcpt: Record<string, number>; maxMs: { banner: number; mail: number; rcpt: number }; ms: number }> {
  dns.set(zone(mode));
  dns.clearQueries();
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: SESSIONS }, (_, i) => session(d.port, CLIENTS[i % CLIENTS.length]!)),
  );
  const ms = Date.now() - t0;
  const rcpt: Record<string, number> = {};
  const maxMs = { banner: 0, mail: 0, rcpt: 0 };
  for (const r of results) {
    assert.match(r.banner, /^220 /);
    assert.match(r.mail, /^250 /);
    assert.match(r.quit, /^221 /);
    rcpt[r.rcpt] = (rcpt[r.rcpt] ?? 0) + 1;
    for (const k of ['banner', 'mail', 'rcpt'] as const) maxMs[k] = Math.max(maxMs[k], r.ms[k]);
  }
  const strange = dns.queries.filter((q) => !KNOWN.has(q.name));
  assert.deepEqual(strange, [], 'every lookup was of a name in the zone (so the mode applied to all of them)');
  assert.ok(dns.queries.length > 0, 'the daemon did ask');
  return { rcpt, maxMs, ms };
}

const dnsFail = (n: number): Record<string, number> => ({ '451 4.4.3': n });
/** RCPT replies counted with the DNS failures as one class (the text names the address) */
const byClass = (rcpt: Record<string, number>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [reply, n] of Object.entries(rcpt)) {
    const m =
      /^451 4\.4\.3 temporary DNS failure: (reverse lookup of 127\.0\.0\.\d+|SPF check of remote\.example)$/.exec(
        reply,
      );
    const key = m ? '451 4.4.3' : reply;
    out[key] = (out[key] ?? 0) + n;
  }
  return out;
};

/**
 * The banner and the MAIL reply never wait for a lookup: one that did would come DNSTimeout after
 * the connect (silent) or later, so the bound is under it by a second. The rest is room for a
 * loaded machine: 40 sessions connecting at once on 2 cores under other load took up to 1.7 s to
 * be greeted (which failed the old bound of 1.7 s under DNSTimeout 2s).
 */
const PROMPT_MS = TIMEOUT_MS - 1000;

function assertBounded(label: string, maxMs: { banner: number; mail: number; rcpt: number }): void {
  // only where a reply that waited would show: in the other modes the lookups end in milliseconds,
  // and how fast 40 sessions are greeted is the machine's load (2.4 s at load average 11)
  if (label === 'silent') {
    assert.ok(maxMs.banner < PROMPT_MS, `${label}: slowest banner ${maxMs.banner} ms`);
    assert.ok(maxMs.mail < PROMPT_MS, `${label}: slowest MAIL reply ${maxMs.mail} ms after the connect`);
  }
  // given up at DNSTimeout (lookups one after another, each with its own timeout, would take twice that)
  assert.ok(
    maxMs.rcpt < 1.5 * TIMEOUT_MS,
    `${label}: slowest RCPT reply ${maxMs.rcpt} ms (DNSTimeout ${TIMEOUT_MS} ms)`,
  );
}

for (const [label, daemon, strict] of [
  ['system resolver, AllowDNSFailures no', () => systemStrict, true],
  ['system resolver, AllowDNSFailures yes', () => systemLenient, false],
  ['tangerine (DoH), AllowDNSFailures no', () => dohStrict, true],
] as const) {
  test(`${label}: bursts of ${SESSIONS} sessions with all of DNS slow, silent, SERVFAIL, then back`, async (t) => {
    const d = daemon();
    const ok = { '250 2.1.5 recipient ok': SESSIONS };
    const slow = await burst(d, 'slow');
    t.diagnostic(`slow: ${JSON.stringify({ ...slow, rcpt: byClass(slow.rcpt) })}`);
    assert.deepEqual(slow.rcpt, ok, 'answers under DNSTimeout are answers');
    assertBounded('slow', slow.maxMs);
    assert.ok(slow.maxMs.rcpt >= 2 * SLOW_MS, 'the delays were awaited');
    for (const mode of ['silent', 'servfail'] as const) {
      const r = await burst(d, mode);
      t.diagnostic(`${mode}: ${JSON.stringify({ ...r, rcpt: byClass(r.rcpt) })}`);
      assert.deepEqual(byClass(r.rcpt), strict ? dnsFail(SESSIONS) : ok, mode);
      assertBounded(mode, r.maxMs);
    }
    const back = await burst(d, 'normal');
    assert.deepEqual(back.rcpt, ok, 'DNS back: accepted again');
    assert.equal(d.proc.exitCode, null, 'the daemon is alive');
    assert.deepEqual(
      d.logs.filter((l) => l.event === 'daemon.error' || (l.level === 'error' && l.event !== 'rbl.error')),
      [],
    );
  });
}
