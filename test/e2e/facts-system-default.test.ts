/**
 * Client facts end to end (issue 5): the system default — MAIL_ERROR and `errcheck` — for each
 * cause of docs/facts.md (DNSBL score, SPF fail with SPFRejectFail, a refused bounce probe, a
 * temporary DNS failure of the reverse lookup or of the SPF check), their order, the provisional
 * accept that applies MAIL_ERROR, and AllowDNSFailures yes and no.
 *
 * Scripts of one test user, chosen by extension:
 *   rcpt+ec+default   records its environment, `errcheck`, then accepts "passed errcheck"
 *   rcpt+pa+default   records its environment and decides nothing (provisional accept)
 * Daemons: strict (AllowDNSFailures no, SPFRejectFail yes), lenient (AllowDNSFailures yes,
 * SPFRejectFail no), probing (SMTPCB yes against a refusing server on 127.0.0.7:25, needs root).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, rblName, reverseName, type DnsServer } from '../support/dns-server.js';
import { startProbeTarget, type ProbeTarget } from '../support/probe-target.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { dialogue, factVars, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
let etc: string;
let dns: DnsServer;
let strict: Daemon;
let lenient: Daemon;
let probing: Daemon;
let refuser: ProbeTarget;
let acceptor: ProbeTarget;

const LISTED = '127.0.0.50';
const CLEAN = '127.0.0.51';
const DNSFAIL = '127.0.0.52';

before(async () => {
  if (unavailable) return;
  u = createUser('sysdef');
  writeScript(u, 'rcpt+ec+default', 'env -0 > "$HOME/env.$EXTENSION"; errcheck; accept "passed errcheck"');
  writeScript(u, 'rcpt+pa+default', 'env -0 > "$HOME/env.$EXTENSION"');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  [refuser, acceptor] = await Promise.all([
    startProbeTarget('127.0.0.7', { kind: 'reject', code: 550, text: '5.1.1 no such mailbox' }),
    startProbeTarget('127.0.0.8', { kind: 'accept' }),
  ]);
  const mx = (host: string) => [{ type: 'MX' as const, priority: 10, exchange: host }];
  dns = await startDnsServer({
    doh: false,
    records: {
      [rblName(LISTED, 'bl.test')]: [
        { type: 'A', address: '127.0.0.2' },
        { type: 'TXT', data: 'blocked for spam' },
      ],
      // the reverse lookup of DNSFAIL fails: its PTR name cannot be confirmed (A lookup SERVFAIL)
      [reverseName(DNSFAIL)]: [{ type: 'PTR', domain: 'host.dnsfail.test' }],
      'host.dnsfail.test': [{ type: 'SERVFAIL' }],
      // every sender domain has an exchanger that accepts bounces, except refuse.example
      'pass.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/16 -all' }, ...mx('mx.accept.example')],
      'fail.example': [{ type: 'TXT', data: 'v=spf1 -all' }, ...mx('mx.accept.example')],
      'temperror.example': [{ type: 'SERVFAIL', only: 'TXT' }, ...mx('mx.accept.example')],
      'refuse.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/16 -all' }, ...mx('mx.refuse.example')],
      'refusefail.example': [{ type: 'TXT', data: 'v=spf1 -all' }, ...mx('mx.refuse.example')],
      'mx.accept.example': [{ type: 'A', address: '127.0.0.8' }],
      'mx.refuse.example': [{ type: 'A', address: '127.0.0.7' }],
    },
  });
  const common = [
    'LocalDomain a.example',
    `PasswdFile ${passwd}`,
    'Separator +',
    'RelayNet 192.0.2.0/24',
    'DNSResolver system',
    `DNSServer 127.0.0.1:${dns.udp.port}`,
    'DNSTimeout 1s',
    'RBL bl.test 1',
    'RBLThreshold 1',
  ];
  [strict, lenient, probing] = await Promise.all([
    startDaemon({ etcDir: etc, conf: [...common, 'AllowDNSFailures no', 'SPFRejectFail yes'].join('\n') }),
    startDaemon({ etcDir: etc, conf: [...common, 'AllowDNSFailures yes', 'SPFRejectFail no'].join('\n') }),
    startDaemon({
      etcDir: etc,
      conf: [...common, 'AllowDNSFailures no', 'SPFRejectFail yes', 'SMTPCB yes', 'SMTPCBTimeout 2s'].join('\n'),
    }),
  ]);
});

after(async () => {
  if (unavailable) return;
  for (const d of [strict, lenient, probing]) await d?.stop();
  await dns?.close();
  for (const t of [refuser, acceptor]) await t?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

let seq = 0;

/** One RCPT to the errcheck (`ec`) or provisional-accept (`pa`) script: the reply and MAIL_ERROR. */
async function check(
  d: Daemon,
  script: 'ec' | 'pa',
  ip: string,
  from: string,
): Promise<{ reply: string; mailError: string | undefined; env: Record<string, string> }> {
  const tag = `t${++seq}`;
  const r = await dialogue(d.port, { local: ip, from, to: `${u.name}+${script}+${tag}@a.example` });
  const env = readEnv(u.home, `${script}+${tag}`);
  return { reply: r.rcpt, mailError: env.MAIL_ERROR, env: factVars(env) };
}

interface Cause {
  what: string;
  ip: string;
  from: string;
  mailError: string | undefined;
  /** the reply after errcheck (and after a provisional accept) */
  reply: string;
}

const STRICT: Cause[] = [
  {
    what: 'DNSBL score ≥ RBLThreshold',
    ip: LISTED,
    from: 's@pass.example',
    mailError: '550 5.7.1 listed by bl.test: blocked for spam',
    reply: '550 5.7.1 listed by bl.test: blocked for spam',
  },
  {
    what: 'SPF fail with SPFRejectFail yes',
    ip: CLEAN,
    from: 's@fail.example',
    mailError: `550 5.7.23 SPF: fail.example does not designate ${CLEAN} as permitted sender`,
    reply: `550 5.7.23 SPF: fail.example does not designate ${CLEAN} as permitted sender`,
  },
  {
    what: 'reverse lookup failed, AllowDNSFailures no',
    ip: DNSFAIL,
    from: 's@pass.example',
    mailError: `451 4.4.3 temporary DNS failure: reverse lookup of ${DNSFAIL}`,
    reply: `451 4.4.3 temporary DNS failure: reverse lookup of ${DNSFAIL}`,
  },
  {
    what: 'SPF temperror, AllowDNSFailures no',
    ip: CLEAN,
    from: 's@temperror.example',
    mailError: '451 4.4.3 temporary DNS failure: SPF check of temperror.example',
    reply: '451 4.4.3 temporary DNS failure: SPF check of temperror.example',
  },
  // order: the first cause that applies
  {
    what: 'DNSBL before SPF fail',
    ip: LISTED,
    from: 's@fail.example',
    mailError: '550 5.7.1 listed by bl.test: blocked for spam',
    reply: '550 5.7.1 listed by bl.test: blocked for spam',
  },
  {
    what: 'SPF fail before a DNS failure',
    ip: DNSFAIL,
    from: 's@fail.example',
    mailError: `550 5.7.23 SPF: fail.example does not designate ${DNSFAIL} as permitted sender`,
    reply: `550 5.7.23 SPF: fail.example does not designate ${DNSFAIL} as permitted sender`,
  },
  {
    what: 'reverse lookup before SPF temperror',
    ip: DNSFAIL,
    from: 's@temperror.example',
    mailError: `451 4.4.3 temporary DNS failure: reverse lookup of ${DNSFAIL}`,
    reply: `451 4.4.3 temporary DNS failure: reverse lookup of ${DNSFAIL}`,
  },
  { what: 'no cause', ip: CLEAN, from: 's@pass.example', mailError: undefined, reply: '250 2.1.5 passed errcheck' },
];

const LENIENT: Cause[] = [
  // AllowDNSFailures does not touch a listing
  {
    what: 'DNSBL score ≥ RBLThreshold',
    ip: LISTED,
    from: 's@pass.example',
    mailError: '550 5.7.1 listed by bl.test: blocked for spam',
    reply: '550 5.7.1 listed by bl.test: blocked for spam',
  },
  {
    what: 'SPF fail, SPFRejectFail no',
    ip: CLEAN,
    from: 's@fail.example',
    mailError: undefined,
    reply: '250 2.1.5 passed errcheck',
  },
  {
    what: 'reverse lookup failed, AllowDNSFailures yes',
    ip: DNSFAIL,
    from: 's@pass.example',
    mailError: undefined,
    reply: '250 2.1.5 passed errcheck',
  },
  {
    what: 'SPF temperror, AllowDNSFailures yes',
    ip: CLEAN,
    from: 's@temperror.example',
    mailError: undefined,
    reply: '250 2.1.5 passed errcheck',
  },
];

async function runCauses(d: Daemon, causes: Cause[], script: 'ec' | 'pa'): Promise<void> {
  const got: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  for (const c of causes) got[c.what] = null;
  // one after the other: each client address is used by several cases
  for (const c of causes) {
    const r = await check(d, script, c.ip, c.from);
    got[c.what] = { MAIL_ERROR: r.mailError, reply: r.reply };
    want[c.what] = {
      MAIL_ERROR: c.mailError,
      reply: script === 'pa' && c.mailError === undefined ? '250 2.1.5 recipient ok' : c.reply,
    };
  }
  assert.deepEqual(got, want);
}

test(
  'AllowDNSFailures no, SPFRejectFail yes: MAIL_ERROR and errcheck for each cause, first cause first',
  { skip },
  async () => {
    await runCauses(strict, STRICT, 'ec');
  },
);

test('a provisional accept (no decision) applies MAIL_ERROR', { skip }, async () => {
  await runCauses(strict, STRICT, 'pa');
});

test(
  'AllowDNSFailures yes, SPFRejectFail no: DNS failures and SPF fail give no MAIL_ERROR; the facts are still there',
  { skip },
  async () => {
    await runCauses(lenient, LENIENT, 'ec');
    const dnsfail = await check(lenient, 'ec', DNSFAIL, 's@temperror.example');
    assert.deepEqual(dnsfail.env, {
      CLIENT_PTR: 'host.dnsfail.test',
      CLIENT_DNSFAIL: '1',
      SPF: 'temperror',
      SPF_HELO: 'none',
      RBL_SCORE: '0',
    });
    const fail = await check(lenient, 'ec', CLEAN, 's@fail.example');
    assert.deepEqual(fail.env, {
      SPF: 'fail',
      SPF_HELO: 'none',
      SPF_EXPLANATION: `fail.example does not designate ${CLEAN} as permitted sender`,
      RBL_SCORE: '0',
    });
  },
);

test(
  'a refused bounce probe: MAIL_ERROR 550 5.1.8 and errcheck; before a DNS failure, after SPF fail',
  { skip },
  async () => {
    const refused = await check(probing, 'ec', CLEAN, 'who@refuse.example');
    // docs/facts.md writes `bounces to SENDER are refused`; the implementation puts SENDER in <>
    const e = '550 5.1.8 bounces to <who@refuse.example> are refused: 550 5.1.1 no such mailbox';
    assert.deepEqual({ MAIL_ERROR: refused.mailError, reply: refused.reply }, { MAIL_ERROR: e, reply: e });
    assert.equal(refused.env.SENDER_BOUNCERES, '550 5.1.1 no such mailbox');
    const withDnsFail = await check(probing, 'ec', DNSFAIL, 'who@refuse.example');
    assert.equal(withDnsFail.mailError, e, 'the refused probe comes before the DNS failure');
    const spfFail = await check(probing, 'ec', CLEAN, 'who@refusefail.example');
    assert.equal(spfFail.env.SENDER_BOUNCERES, '550 5.1.1 no such mailbox');
    assert.equal(
      spfFail.mailError,
      `550 5.7.23 SPF: refusefail.example does not designate ${CLEAN} as permitted sender`,
      'SPF fail comes first',
    );
    const listed = await check(probing, 'ec', LISTED, 'who@refuse.example');
    assert.equal(listed.mailError, '550 5.7.1 listed by bl.test: blocked for spam', 'a listing comes first');
    const accepted = await check(probing, 'ec', CLEAN, 'ok@pass.example');
    assert.deepEqual(
      { MAIL_ERROR: accepted.mailError, reply: accepted.reply, bounce: accepted.env.SENDER_BOUNCERES },
      { MAIL_ERROR: undefined, reply: '250 2.1.5 passed errcheck', bounce: '' },
    );
    assert.ok(refuser.connections >= 1 && acceptor.connections >= 1);
  },
);
