/**
 * Client facts end to end (issue 5): SPF as a script sees it — SPF, SPF_HELO, SPF_EXPLANATION and
 * the MAIL_ERROR of a temperror — for pass, fail (default and exp= explanation), softfail,
 * neutral, none, permerror and temperror (SERVFAIL and a lookup that never answers), for the null
 * sender (postmaster@HELO), over `system` (UDP) and `tangerine` (DoH over http) against one
 * loopback DNS server. The recipient's script writes its environment to a file and accepts.
 *
 * Timing, by order of events rather than absolute bounds (robust on a loaded machine): the MAIL
 * reply of the sender whose SPF lookup never answers reaches the client before the daemon gives
 * that check up (its mail.facts line), so it did not wait for it; no RCPT waits much beyond
 * DNSTimeout.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, factVars, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

/**
 * DNSTimeout: what the lookup that never answers costs each run over tangerine (the system resolver
 * gives it up after about 1 s whatever this says: c-ares 1.34 times a try by the latency it saw)
 */
const TIMEOUT_MS = 4000;
const HANG_CASE = 'temperror (no answer within DNSTimeout)';

let u: TestUser;
let etc: string;
let dns: DnsServer;
let system: Daemon;
let doh: Daemon;

before(async () => {
  if (unavailable) return;
  u = createUser('spf');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  dns = await startDnsServer({
    records: {
      'pass.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/16 -all' }],
      'fail.example': [{ type: 'TXT', data: 'v=spf1 ip4:192.0.2.1 -all' }],
      'expfail.example': [{ type: 'TXT', data: 'v=spf1 -all exp=why.expfail.example' }],
      'why.expfail.example': [{ type: 'TXT', data: '%{i} may not send for %{d}' }],
      'softfail.example': [{ type: 'TXT', data: 'v=spf1 ~all' }],
      'neutral.example': [{ type: 'TXT', data: 'v=spf1 ?all' }],
      'none.example': [
        { type: 'A', address: '192.0.2.9' },
        { type: 'TXT', data: 'not an spf record' },
      ],
      'permerror.example': [{ type: 'TXT', data: 'v=spf1 ip4:not-an-address -all' }],
      'temperror.example': [{ type: 'SERVFAIL' }],
      'hang.example': [{ type: 'HANG' }],
      'helo-pass.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/16 -all' }],
      'helo-fail.example': [{ type: 'TXT', data: 'v=spf1 -all' }],
    },
  });
  const common = [
    `LocalDomain a.example`,
    `PasswdFile ${passwd}`,
    'Separator +',
    'RelayNet 192.0.2.0/24',
    `DNSTimeout ${TIMEOUT_MS / 1000}s`,
    'AllowDNSFailures no',
  ];
  [system, doh] = await Promise.all([
    startDaemon({
      etcDir: etc,
      conf: [...common, 'DNSResolver system', `DNSServer 127.0.0.1:${dns.udp.port}`].join('\n'),
    }),
    startDaemon({
      etcDir: etc,
      conf: [...common, 'DNSResolver tangerine', 'DNSProtocol http', `DNSServer ${dns.doh}`].join('\n'),
    }),
  ]);
});

after(async () => {
  if (unavailable) return;
  await system?.stop();
  await doh?.stop();
  await dns?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

interface Case {
  what: string;
  from: string;
  helo?: string;
  /** the expected fact variables for a client at `ip` */
  facts: Record<string, string> | ((ip: string) => Record<string, string>);
}

const CASES: Case[] = [
  { what: 'pass', from: 's@pass.example', facts: { SPF: 'pass', SPF_HELO: 'none' } },
  {
    what: 'fail, default explanation',
    from: 's@fail.example',
    facts: (ip) => ({
      SPF: 'fail',
      SPF_HELO: 'none',
      SPF_EXPLANATION: `fail.example does not designate ${ip} as permitted sender`,
    }),
  },
  {
    what: 'fail, exp= explanation',
    from: 's@expfail.example',
    facts: (ip) => ({ SPF: 'fail', SPF_HELO: 'none', SPF_EXPLANATION: `${ip} may not send for expfail.example` }),
  },
  { what: 'softfail', from: 's@softfail.example', facts: { SPF: 'softfail', SPF_HELO: 'none' } },
  { what: 'neutral', from: 's@neutral.example', facts: { SPF: 'neutral', SPF_HELO: 'none' } },
  { what: 'none (no SPF record)', from: 's@none.example', facts: { SPF: 'none', SPF_HELO: 'none' } },
  { what: 'none (no such domain)', from: 's@nxdomain.example', facts: { SPF: 'none', SPF_HELO: 'none' } },
  { what: 'permerror', from: 's@permerror.example', facts: { SPF: 'permerror', SPF_HELO: 'none' } },
  {
    what: 'temperror (SERVFAIL)',
    from: 's@temperror.example',
    facts: {
      SPF: 'temperror',
      SPF_HELO: 'none',
      MAIL_ERROR: '451 4.4.3 temporary DNS failure: SPF check of temperror.example',
    },
  },
  {
    what: 'temperror (no answer within DNSTimeout)',
    from: 's@hang.example',
    facts: {
      SPF: 'temperror',
      SPF_HELO: 'none',
      MAIL_ERROR: '451 4.4.3 temporary DNS failure: SPF check of hang.example',
    },
  },
  {
    what: 'HELO pass, MAIL FROM softfail',
    from: 's@softfail.example',
    helo: 'helo-pass.example',
    facts: { SPF: 'softfail', SPF_HELO: 'pass' },
  },
  // a failing HELO alone is no fail of MAIL FROM: no explanation, no MAIL_ERROR
  {
    what: 'HELO fail, MAIL FROM pass',
    from: 's@pass.example',
    helo: 'helo-fail.example',
    facts: { SPF: 'pass', SPF_HELO: 'fail' },
  },
  {
    what: 'null sender: postmaster@HELO is checked',
    from: '',
    helo: 'helo-fail.example',
    facts: (ip) => ({
      SPF: 'fail',
      SPF_HELO: 'fail',
      SPF_EXPLANATION: `helo-fail.example does not designate ${ip} as permitted sender`,
    }),
  },
  { what: 'null sender, HELO pass', from: '', helo: 'helo-pass.example', facts: { SPF: 'pass', SPF_HELO: 'pass' } },
];

let seq = 0;

/** When the daemon had the MAIL-time facts of the (one) session from `ip`: its mail.facts line's ts. */
async function mailFactsAt(d: Daemon, ip: string): Promise<number> {
  const connect = await d.waitLog((l) => l.event === 'session.connect' && l.ip === ip);
  const facts = await d.waitLog((l) => l.event === 'mail.facts' && l.sid === connect.sid, 3 * TIMEOUT_MS);
  return Date.parse(String(facts.ts));
}

/** true, or how late the MAIL reply came after the SPF check was given up */
async function mailBefore(d: Daemon, ip: string, mailAt: number): Promise<true | string> {
  const settled = await mailFactsAt(d, ip);
  return mailAt < settled || `the MAIL reply came ${mailAt - settled} ms after the SPF check was given up`;
}

/** Every case at once, each from its own address (MaxClientsPerIp), compared in one deepEqual. */
async function runCases(d: Daemon, label: string): Promise<void> {
  const got: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  for (const c of CASES) got[c.what] = null;
  await Promise.all(
    CASES.map(async (c, i) => {
      const tag = `${label}${++seq}`;
      const ip = `127.0.0.${40 + i}`;
      const r = await dialogue(d.port, {
        local: ip,
        from: c.from,
        helo: c.helo ?? 'client.example',
        to: `${u.name}+${tag}@a.example`,
      });
      const env = readEnv(u.home, tag);
      got[c.what] = {
        mail: r.mail,
        // the MAIL reply did not wait for the SPF check that never answers
        ...(c.what === HANG_CASE ? { mailFirst: await mailBefore(d, ip, r.at.mail) } : {}),
        rcpt: r.rcpt,
        rcptBounded: r.ms.rcpt < 1.5 * TIMEOUT_MS || `RCPT reply after ${r.ms.rcpt} ms`,
        SENDER: env.SENDER,
        facts: factVars(env),
      };
      want[c.what] = {
        mail: '250 2.1.0 sender ok',
        ...(c.what === HANG_CASE ? { mailFirst: true } : {}),
        rcpt: '250 2.1.5 recipient ok',
        rcptBounded: true,
        SENDER: c.from,
        facts: typeof c.facts === 'function' ? c.facts(ip) : c.facts,
      };
    }),
  );
  assert.deepEqual(got, want, label);
}

test(
  'system resolver (UDP): pass, fail, softfail, neutral, none, permerror, temperror; HELO; null sender',
  { skip },
  async () => {
    await runCases(system, 'sys');
    const l = await system.waitLog((x) => x.event === 'mail.facts' && x.from === 's@expfail.example');
    assert.equal(l.spf, 'fail');
    assert.equal(l.spf_helo, 'none');
  },
);

test('tangerine over DoH (http): the same values', { skip }, async () => {
  await runCases(doh, 'doh');
});
