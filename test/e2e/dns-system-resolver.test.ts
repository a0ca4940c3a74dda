/**
 * The machine's resolver by default (issue 16): a configuration file without any DNS line
 * (DNSResolver, DNSServer, DNSProtocol) resolves through the nameservers of /etc/resolv.conf,
 * and a SIGHUP makes the daemon read that file again.
 *
 * This machine's /etc/resolv.conf points off the box, and a test must never ask it: the daemon runs
 * in a private mount namespace (test/support/daemon.ts `resolvConf`: unshare --mount, root only)
 * whose /etc/resolv.conf is a file of the test naming a loopback DNS server. resolv.conf cannot
 * name a port, so the two servers listen on port 53 of loopback addresses nothing else uses
 * (127.53.16.1 and .2; embedded-default.test.ts has 127.0.0.53). The client connects from
 * 127.0.0.16; each server gives it a different reverse name, so every fact says which server
 * answered: the session.facts and mail.facts log lines, the variables the recipient's script sees
 * (CLIENT_PTR, CLIENT_NAME, SPF, RBL_LISTED), X-Avenger of the message (kept in the hold queue),
 * and each server's own query log. A DNSBL answering 127.255.255.254 shows the rbl.error reason
 * and hint. Needs root (the namespace, port 53, a test account).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon, type LogLine } from '../support/daemon.js';
import { startDnsServer, reverseName, rblName, type DnsServer, type Records } from '../support/dns-server.js';
import { SmtpClient } from '../support/smtp-client.js';
import { processTree } from '../support/procs.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, factVars, readEnv } from '../support/facts.js';

const CLIENT = '127.0.0.16';
const FIRST = '127.53.16.1';
const SECOND = '127.53.16.2';

const unavailable = canCreateUsers();
const skip = unavailable
  ? `skipped: ${unavailable} (and a private mount namespace for /etc/resolv.conf, port 53)`
  : spawnSync('unshare', ['--version']).status !== 0
    ? 'skipped: no unshare(1)'
    : false;
if (skip && process.env.CI) throw new Error(`CI runs as root: ${skip}`);

/** What one server knows: the client's reverse name (confirmed), SPF of the sender, two DNSBLs. */
function records(name: string): Records {
  return {
    [reverseName(CLIENT)]: [{ type: 'PTR', domain: name }],
    [name]: [{ type: 'A', address: CLIENT }],
    'sender.resolv.test': [{ type: 'TXT', data: `v=spf1 ip4:${CLIENT} -all` }],
    [rblName(CLIENT, 'bl.resolv.test')]: [{ type: 'A', address: '127.0.0.2' }],
    [rblName(CLIENT, 'refuser.resolv.test')]: [{ type: 'A', address: '127.255.255.254' }],
  };
}

let tmp: string;
let resolvConf: string;
let first: DnsServer;
let second: DnsServer;
let d: Daemon;
let u: TestUser;

before(async () => {
  if (skip) return;
  first = await startDnsServer({ doh: false, host: FIRST, port: 53, records: records('first.resolv.test') });
  second = await startDnsServer({ doh: false, host: SECOND, port: 53, records: records('second.resolv.test') });
  tmp = mkdtempSync(join(tmpdir(), 'asmtpd-resolv-'));
  chmodSync(tmp, 0o755);
  resolvConf = join(tmp, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${FIRST}\n`);
  chmodSync(resolvConf, 0o644);
  u = createUser('resolv');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  const passwd = join(tmp, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    resolvConf,
    // no DNS line; RelayNet so that 127.0.0.16 is an ordinary client; two DNSBLs
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      'RelayNet 192.0.2.0/24',
      'RBL bl.resolv.test',
      'RBL refuser.resolv.test',
    ].join('\n'),
  });
});

after(async () => {
  if (skip) return;
  await d?.stop();
  await first?.close();
  await second?.close();
  if (u) removeUser(u);
  rmSync(tmp, { recursive: true, force: true });
});

/** One message from CLIENT to the test user (kept in the hold queue); its script records its variables in env.TAG. */
async function sendOne(tag: string): Promise<string> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', CLIENT);
  try {
    assert.match((await c.greeting()).last, /^220 /);
    const r = await c.send(
      'someone@sender.resolv.test',
      [`${u.name}+${tag}@a.example`],
      `Subject: ${tag}\r\n\r\nbody\r\n`,
      'client.resolv.test',
    );
    assert.match(r.last, /^250 2\.0\.0 Ok: queued as /);
    await c.cmd('QUIT').catch(() => undefined);
    return r.last.split(' ').at(-1)!;
  } finally {
    c.close();
  }
}

/** The X-Avenger field of the held message with this subject, unfolded. */
function heldXAvenger(subject: string): string {
  const dir = join(d.dbDir, 'queue', 'new');
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'latin1');
    if (!text.includes(`Subject: ${subject}\r\n`)) continue;
    const m = /^X-Avenger:[^\r]*(?:\r\n[ \t][^\r]*)*\r\n/m.exec(text);
    assert.ok(m, 'the held message has X-Avenger');
    return m[0].replace(/\r\n[ \t]+/g, ' ').trim();
  }
  throw new Error(`no held message with Subject: ${subject}`);
}

const askedOf = (s: DnsServer): string[] => s.queries.map((q) => `${q.type} ${q.name}`);

/** The log lines logged after `from` (an index into d.logs) that match. */
const since = (from: number, pred: (l: LogLine) => boolean) => (l: LogLine) => d.logs.indexOf(l) >= from && pred(l);

test('a config without DNS lines asks the nameserver of /etc/resolv.conf', { skip }, async () => {
  const conf = readFileSync(d.confPath, 'utf8');
  assert.doesNotMatch(conf, /^\s*DNS/im, 'the configuration has no DNS line');
  assert.notEqual(readFileSync('/etc/resolv.conf', 'utf8'), `nameserver ${FIRST}\n`, 'the test sees its own');

  await sendOne('first');
  const facts = await d.waitLog((l) => l.event === 'session.facts');
  assert.equal(facts.ptr, 'first.resolv.test');
  assert.equal(facts.name, 'first.resolv.test');
  assert.deepEqual(facts.rbl_listed, ['bl.resolv.test']);
  const mail = await d.waitLog((l) => l.event === 'mail.facts');
  assert.equal(mail.spf, 'pass');
  // the refusing list: an error with its reason and a hint, not a listing
  const refused = await d.waitLog((l) => l.event === 'rbl.error');
  assert.deepEqual(
    [refused.zone, refused.kind, refused.detail, refused.reason, refused.hint],
    [
      'refuser.resolv.test',
      'refused',
      '127.255.255.254',
      'query through a public or open resolver',
      'the DNSBL refuses this resolver: a public resolver or over quota; use a local caching resolver such as unbound',
    ],
  );
  assert.deepEqual(factVars(readEnv(u.home, 'first')), {
    CLIENT_NAME: 'first.resolv.test',
    CLIENT_PTR: 'first.resolv.test',
    SPF: 'pass',
    SPF_HELO: 'none',
    RBL_SCORE: '1',
    RBL_LISTED: 'bl.resolv.test',
    RBL_REASON: 'listed by bl.resolv.test',
    MAIL_ERROR: '550 5.7.1 listed by bl.resolv.test: listed by bl.resolv.test',
  });
  const x = heldXAvenger('first');
  assert.match(x, /client-dns=first\.resolv\.test;/);
  assert.match(x, /spf=pass;/);
  assert.match(x, /rbl=bl\.resolv\.test(;|$)/);

  const asked = askedOf(first);
  for (const q of [
    `PTR ${reverseName(CLIENT)}`,
    'A first.resolv.test',
    'TXT sender.resolv.test',
    `A ${rblName(CLIENT, 'bl.resolv.test')}`,
    `A ${rblName(CLIENT, 'refuser.resolv.test')}`,
  ])
    assert.ok(asked.includes(q), `${q} asked of ${FIRST}: ${asked.join(', ')}`);
  assert.deepEqual(askedOf(second), [], 'nothing asked of the server resolv.conf does not name');
});

test('the daemon and every process it started see the same /etc/resolv.conf', { skip }, () => {
  const ns = (pid: number | string): string => readlinkSync(`/proc/${pid}/ns/mnt`);
  const tree = processTree(d.proc.pid!);
  assert.ok(tree.length >= 2, `the daemon and its script runner: ${tree.map((p) => p.cmd).join(' | ')}`);
  for (const p of tree) assert.equal(ns(p.pid), ns(d.proc.pid!), `${p.pid} ${p.cmd}`);
  assert.notEqual(ns(d.proc.pid!), ns('self'), 'a mount namespace of its own');
  // the SMTP process gave up root, and still resolves through the file (the facts above)
  assert.notEqual(tree[0]?.uid[0], 0, 'the SMTP process is not root');
});

test('a SIGHUP reads /etc/resolv.conf again: new sessions ask the nameserver it names now', { skip }, async () => {
  first.clearQueries();
  second.clearQueries();
  // the same file (the bind mount holds its inode), new contents
  writeFileSync(resolvConf, `nameserver ${SECOND}\n`);
  const from = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog(since(from, (l) => l.event === 'daemon.reload'));

  await sendOne('second');
  const facts = await d.waitLog(since(from, (l) => l.event === 'session.facts'));
  assert.equal(facts.ptr, 'second.resolv.test');
  assert.equal(facts.name, 'second.resolv.test');
  assert.equal(factVars(readEnv(u.home, 'second')).CLIENT_PTR, 'second.resolv.test');
  assert.match(heldXAvenger('second'), /client-dns=second\.resolv\.test;/);
  assert.ok(askedOf(second).includes(`PTR ${reverseName(CLIENT)}`), askedOf(second).join(', '));
  assert.deepEqual(askedOf(first), [], 'the old nameserver is no longer asked');
});
