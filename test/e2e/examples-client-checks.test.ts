/**
 * Two client-facts examples end to end through the real daemon, each installed verbatim for a test
 * account, with a loopback DNS server answering the SPF, PTR and A lookups (clients connect from
 * their own 127.0.0.x address):
 * - examples/dot-avenger/spf-fail: SPF fail → 550 5.7.23 with the SPF explanation; not for a
 *   client whose confirmed name is in spf.whitelist, nor for one whose address the user adds to it;
 *   an unconfirmed name that would match does not count; pass and softfail get no decision.
 * - examples/dot-avenger/dynamic-clients: no PTR → 451; a dynamic-looking name (confirmed or not,
 *   any case) → 451; a proper name, confirmed or not → 250; a failed reverse lookup → the script
 *   leaves it to the system default (451 4.4.3 with AllowDNSFailures no).
 * Needs root (test accounts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { reverseName, startDnsServer, type DnsServer, type Records } from '../support/dns-server.js';
import { installExample } from '../support/examples.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let spfUser: TestUser, dynUser: TestUser, av: TestUser;
let etc: string;
let dns: DnsServer;
let d: Daemon;

/** A PTR for ip naming `name`, confirmed (its A record is ip) or not (its A record is elsewhere). */
function ptr(ip: string, name: string, confirmed: boolean): Records {
  return {
    [reverseName(ip)]: [{ type: 'PTR', domain: name }],
    [name]: [{ type: 'A', address: confirmed ? ip : '192.0.2.99' }],
  };
}

before(async () => {
  if (unavailable) return;
  spfUser = createUser('exspf');
  dynUser = createUser('exdyn');
  av = createUser('excav');
  installExample(spfUser, 'spf-fail', 'rcpt');
  installExample(spfUser, 'spf-fail', 'spf.whitelist');
  installExample(dynUser, 'dynamic-clients', 'rcpt');
  installExample(dynUser, 'dynamic-clients', 'dynamic.patterns');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-exc-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, [spfUser, dynUser, av].map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  dns = await startDnsServer({
    records: {
      'fail.example': [{ type: 'TXT', data: 'v=spf1 ip4:192.0.2.1 -all' }],
      'pass.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' }],
      'softfail.example': [{ type: 'TXT', data: 'v=spf1 ~all' }],
      // spf-fail: a forwarder the shipped whitelist names (*.forwarder.example), confirmed …
      ...ptr('127.0.0.52', 'mx1.forwarder.example', true),
      // … and a client merely claiming such a name
      ...ptr('127.0.0.53', 'fake.forwarder.example', false),
      // dynamic-clients
      ...ptr('127.0.0.41', 'dsl-127-0-0-41.isp.example', true),
      ...ptr('127.0.0.42', 'host42.pool.isp.example', false),
      ...ptr('127.0.0.43', 'mail.good.example', true),
      ...ptr('127.0.0.44', 'mx.other.example', false),
      [reverseName('127.0.0.45')]: [{ type: 'SERVFAIL' }],
      ...ptr('127.0.0.46', 'CABLE-7.Broadband.ISP.example', true),
    },
  });
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${av.name}`,
      'AvengerTimeout 10s',
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'DNSTimeout 1s',
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await dns?.close();
  for (const u of [spfUser, dynUser, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** MAIL FROM and one RCPT from client address `ip`; the RCPT reply line. */
async function rcpt(ip: string, from: string, to: string): Promise<string> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', ip);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

const OK = '250 2.1.5 recipient ok';

test('spf-fail: SPF fail → 550 5.7.23 with the explanation; pass and softfail → no decision', { skip }, async () => {
  const to = `${spfUser.name}@a.example`;
  assert.equal(
    await rcpt('127.0.0.50', 's@fail.example', to),
    '550 5.7.23 SPF: fail.example does not designate 127.0.0.50 as permitted sender',
  );
  assert.equal(await rcpt('127.0.0.50', 's@pass.example', to), OK);
  assert.equal(await rcpt('127.0.0.50', 's@softfail.example', to), OK);
});

test(
  'spf-fail: a confirmed forwarder in spf.whitelist passes; the same name unconfirmed does not',
  { skip },
  async () => {
    const to = `${spfUser.name}@a.example`;
    assert.equal(await rcpt('127.0.0.52', 's@fail.example', to), OK, 'mx1.forwarder.example, confirmed');
    assert.match(await rcpt('127.0.0.53', 's@fail.example', to), /^550 5\.7\.23 SPF: /, 'fake.forwarder.example');
  },
);

test('spf-fail: an address the user adds to spf.whitelist passes from then on', { skip }, async () => {
  const to = `${spfUser.name}@a.example`;
  assert.match(await rcpt('127.0.0.54', 's@fail.example', to), /^550 5\.7\.23 /);
  appendFileSync(join(spfUser.home, '.avenger', 'spf.whitelist'), '# my old university\n127.0.0.54\n');
  assert.equal(await rcpt('127.0.0.54', 's@fail.example', to), OK);
});

test(
  'dynamic-clients: no PTR, or a dynamic-looking name (confirmed or not, any case) → 451 4.7.1',
  { skip },
  async () => {
    const to = `${dynUser.name}@a.example`;
    const from = 's@pass.example';
    assert.equal(
      await rcpt('127.0.0.40', from, to),
      "451 4.7.1 no reverse DNS for 127.0.0.40: please send through your provider's mail server",
    );
    assert.equal(
      await rcpt('127.0.0.41', from, to),
      "451 4.7.1 dsl-127-0-0-41.isp.example looks like a dynamic address: please send through your provider's mail server",
    );
    assert.match(
      await rcpt('127.0.0.42', from, to),
      /^451 4\.7\.1 host42\.pool\.isp\.example looks like a dynamic address/,
    );
    assert.match(await rcpt('127.0.0.46', from, to), /^451 4\.7\.1 cable-7\.broadband\.isp\.example looks like/i);
  },
);

test(
  "dynamic-clients: a proper name, confirmed or not → 250; a failed lookup is the system default's",
  { skip },
  async () => {
    const to = `${dynUser.name}@a.example`;
    const from = 's@pass.example';
    assert.equal(await rcpt('127.0.0.43', from, to), OK, 'mail.good.example, confirmed');
    assert.equal(await rcpt('127.0.0.44', from, to), OK, 'mx.other.example, unconfirmed');
    assert.match(await rcpt('127.0.0.45', from, to), /^451 4\.4\.3 /, 'SERVFAIL: MAIL_ERROR (AllowDNSFailures no)');
  },
);
