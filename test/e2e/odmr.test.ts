/**
 * ETRN (RFC 1985) and On-Demand Mail Relay (RFC 2645) against the real daemon, over real sockets
 * (issue 20, items 3 and 4). One daemon without TLS certificates: AuthFile with a `{CRAM-MD5}`
 * entry made by `doveadm pw` and a `{PLAIN}` one, AuthCramMD5 yes, ODMRPort on a free port, and
 * HoldDomain lines; no RelayHost, so what it accepts is held (the hold queue). RelayNet is
 * 127.0.0.1 only: 127.0.0.2 is a stranger.
 *
 * - CRAM-MD5 in clear works (RFC 2195 exchange), PLAIN and LOGIN are not offered in clear and get
 *   538 5.7.11; EHLO on SMTPPort offers ETRN, not ATRN.
 * - ETRN: a stranger gets 459; from RelayNet, a HoldDomain with held mail gets 253 with the count
 *   and the mail reaches the domain's site (a real SMTP sink) byte for byte as it was held; an
 *   empty HoldDomain 251; an unknown domain 459; bad syntax 501; `@domain` and `#queue` forms.
 * - ODMR with fetchmail (Debian's, run as an unprivileged user, rc file 0600): it authenticates
 *   with CRAM-MD5, sends ATRN, and the held mail of its domain reaches its smtphost (a sink)
 *   byte-identical; another domain's mail stays held. A user asking for a domain not theirs gets
 *   450 (fetchmail: "ATRN request refused"); the ODMR port refuses MAIL with 502 and ATRN before
 *   AUTH with 530; nothing held gives 453.
 * - A bare ATRN takes every domain of the user over one reversed session; the test's side is then
 *   a real SMTP server (smtp-server on the same socket): it greets, we EHLO and deliver.
 * Needs root (a user for fetchmail), fetchmail and doveadm: skipped with the reason elsewhere,
 * a failure in CI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { readHeld } from 'asmtpd/dist/relay/hold-queue.js';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { freePort } from '../support/ports.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';

const FETCHMAIL = '/usr/bin/fetchmail';
const DOVEADM = '/usr/bin/doveadm';
const unavailable =
  canCreateUsers() ??
  (!existsSync(FETCHMAIL)
    ? 'fetchmail is not installed (apt-get install fetchmail)'
    : !existsSync(DOVEADM)
      ? 'doveadm is not installed (apt-get install dovecot-core)'
      : null);
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const ODMR_SECRET = 'odmr secret: never in clear';
const OTHER_SECRET = 'other-secret';
const MULTI_SECRET = 'multi-secret';

let d: Daemon | undefined;
let odmrPort = 0;
let etrnSite: Sink | undefined;
let customer: Sink | undefined;
let fetchUser: TestUser | undefined;
let dir: string;

const queueDir = (): string => join(d!.dbDir, 'queue');

/** Files of the hold queue waiting for delivery (new/ and cur/), with their bytes as delivery sends them. */
async function heldFor(domain: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const sub of ['new', 'cur']) {
    const p = join(queueDir(), sub);
    if (!existsSync(p)) continue;
    for (const f of readdirSync(p)) {
      const env = await readHeld(join(p, f));
      if (!env.to.some((a) => a.endsWith(`@${domain}`))) continue;
      out.set(env.queueId, readFileSync(join(p, f)).subarray(env.headerOffset));
    }
  }
  return out;
}

/** A message accepted from RelayNet for `to`: held (no RelayHost). */
async function hold(to: string, body: string): Promise<void> {
  const c = await SmtpClient.connect(d!.port);
  await c.greeting();
  const r = await c.send('sender@remote.test', [to], body);
  assert.match(r.last, /^250 /, r.last);
  c.close();
}

/** Read the CRAM-MD5 challenge of a 334 reply and answer it. */
function cramAnswer(reply334: string, user: string, secret: string): string {
  const challenge = Buffer.from(reply334.slice(4).trim(), 'base64').toString('utf8');
  const digest = createHmac('md5', secret).update(challenge).digest('hex');
  return Buffer.from(`${user} ${digest}`, 'utf8').toString('base64');
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run fetchmail as the test user, once, with an rc file (mode 0600, as fetchmail demands). */
function runFetchmail(domains: string, user: string, secret: string): Promise<{ code: number | null; out: string }> {
  const u = fetchUser!;
  const rc = join(u.home, `fetchmailrc-${domains.replace(/[^a-z]/g, '')}`);
  writeFileSync(
    rc,
    [
      'set no syslog',
      'set no bouncemail',
      `poll 127.0.0.1 protocol ODMR service ${odmrPort} timeout 20`,
      `  user "${user}" password "${secret}"`,
      `  fetchdomains ${domains}`,
      `  smtphost 127.0.0.1/${customer!.port}`,
      '',
    ].join('\n'),
  );
  chownSync(rc, u.uid, u.gid);
  chmodSync(rc, 0o600);
  return new Promise((resolve, reject) => {
    const p = spawn(FETCHMAIL, ['-v', '-f', rc, '--pidfile', join(u.home, `fetchmail-${Date.now()}.pid`)], {
      uid: u.uid,
      gid: u.gid,
      env: { HOME: u.home, PATH: '/usr/bin:/bin', LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

before(async () => {
  if (skip) return;
  try {
    dir = mkdtempSync(join(tmpdir(), 'asmtpd-odmr-'));
    chmodSync(dir, 0o755);
    const cram = execFileSync(DOVEADM, ['pw', '-s', 'CRAM-MD5', '-p', ODMR_SECRET], { encoding: 'utf8' }).trim();
    const authFile = join(dir, 'auth-users');
    writeFileSync(authFile, `odmr:${cram}\nother:{PLAIN}${OTHER_SECRET}\nmulti:{PLAIN}${MULTI_SECRET}\n`);
    chmodSync(authFile, 0o644);
    etrnSite = await startSink();
    customer = await startSink();
    fetchUser = createUser('odmr');
    odmrPort = await freePort();
    d = await startDaemon({
      conf: [
        'RelayNet 127.0.0.1/32',
        `AuthFile ${authFile}`,
        'AuthCramMD5 yes',
        `ODMRPort ${odmrPort}`,
        'HoldDomain odmr.example odmr',
        'HoldDomain other.example other',
        'HoldDomain empty.example other',
        `HoldDomain etrn.example other 127.0.0.1:${etrnSite.port}`,
        `HoldDomain sub.etrn.example other 127.0.0.1:${etrnSite.port}`,
        'HoldDomain one.example multi',
        'HoldDomain two.example multi',
      ].join('\n'),
    });
  } catch (err) {
    await d?.stop();
    throw err;
  }
});

after(async () => {
  await d?.stop();
  await etrnSite?.close();
  await customer?.close();
  if (fetchUser) removeUser(fetchUser);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  'CRAM-MD5 without TLS works; PLAIN and LOGIN are not offered in clear (538 5.7.11); ETRN offered, ATRN not on SMTPPort',
  { skip },
  async () => {
    const c = await SmtpClient.connect(d!.port, '127.0.0.1', '127.0.0.2');
    await c.greeting();
    const ehlo = await c.cmd('EHLO client.test');
    assert.equal(ehlo.code, 250);
    const keywords = ehlo.lines.map((l) => l.slice(4));
    assert.ok(keywords.includes('AUTH CRAM-MD5'), keywords.join(' | '));
    assert.ok(!keywords.some((k) => /PLAIN|LOGIN/.test(k)), keywords.join(' | '));
    assert.ok(keywords.includes('ETRN'));
    assert.ok(!keywords.includes('ATRN'));
    assert.equal(
      (await c.cmd('AUTH PLAIN ' + Buffer.from('\0other\0' + OTHER_SECRET).toString('base64'))).last,
      '538 5.7.11 encryption required for requested authentication mechanism',
    );
    assert.match((await c.cmd('AUTH LOGIN')).last, /^538 5\.7\.11 /);
    // a wrong answer first, then the right one (both users: a {CRAM-MD5} and a {PLAIN} entry)
    let r = await c.cmd('AUTH CRAM-MD5');
    assert.equal(r.code, 334);
    assert.match((await c.cmd(cramAnswer(r.last, 'odmr', 'wrong'))).last, /^535 5\.7\.8 /);
    r = await c.cmd('AUTH CRAM-MD5');
    assert.match((await c.cmd(cramAnswer(r.last, 'odmr', ODMR_SECRET))).last, /^235 /);
    c.close();
    const c2 = await SmtpClient.connect(d!.port, '127.0.0.1', '127.0.0.2');
    await c2.greeting();
    await c2.cmd('EHLO client.test');
    r = await c2.cmd('AUTH CRAM-MD5');
    assert.match((await c2.cmd(cramAnswer(r.last, 'other', OTHER_SECRET))).last, /^235 /);
    c2.close();
    await waitFor(() => d!.logs.filter((l) => l.event === 'auth.decision').length >= 3, 'three auth.decision lines');
    const decisions = d!.logs.filter((l) => l.event === 'auth.decision' && l.method === 'CRAM-MD5');
    assert.deepEqual(
      decisions.map((l) => [l.user, l.result]),
      [
        ['odmr', 'failed'],
        ['odmr', 'ok'],
        ['other', 'ok'],
      ],
    );
    assert.ok(!JSON.stringify(d!.logs).includes(ODMR_SECRET), 'the secret is never logged');
  },
);

test(
  'ETRN (RFC 1985): stranger 459; known domain with held mail 253 and delivered to its site byte for byte; empty 251; unknown 459; syntax 501',
  { skip },
  async () => {
    // a stranger: neither RelayNet nor authenticated
    const s = await SmtpClient.connect(d!.port, '127.0.0.1', '127.0.0.2');
    await s.greeting();
    await s.cmd('EHLO stranger.test');
    assert.equal(
      (await s.cmd('ETRN etrn.example')).last,
      '459 4.7.1 Node etrn.example not allowed: ETRN is for RelayNet clients and authenticated users',
    );
    s.close();

    await hold('a@etrn.example', 'Subject: one\r\n\r\nfirst held message\r\n.leading dot\r\n');
    await hold('b@sub.etrn.example', 'Subject: two\r\n\r\nsecond, for a subdomain\r\n');
    await hold('c@etrn.example', 'Subject: three\r\n\r\n' + 'x'.repeat(5000) + '\r\n');
    const held = await heldFor('etrn.example');
    assert.equal(held.size, 2);
    assert.equal(etrnSite!.messages.length, 0, 'nothing delivered before the ETRN');

    const c = await SmtpClient.connect(d!.port);
    await c.greeting();
    await c.cmd('EHLO relaynet.test');
    assert.equal((await c.cmd('ETRN')).last, '501 5.5.4 Syntax: ETRN [@|#]domain');
    assert.equal((await c.cmd('ETRN not_a domain')).last, '501 5.5.4 Syntax: ETRN [@|#]domain');
    assert.equal((await c.cmd('ETRN empty.example')).last, '251 2.0.0 OK, no messages waiting for node empty.example');
    assert.equal(
      (await c.cmd('ETRN #empty.example')).last,
      '251 2.0.0 OK, no messages waiting for node #empty.example',
    );
    assert.equal(
      (await c.cmd('ETRN unknown.example')).last,
      '459 4.7.1 Node unknown.example not allowed: no mail is held here for it (not a HoldDomain)',
    );
    assert.equal(
      (await c.cmd('ETRN etrn.example')).last,
      '253 2.0.0 OK, 2 pending messages for node etrn.example started',
    );
    await waitFor(() => etrnSite!.messages.length === 2, 'the two etrn.example messages at the site');
    const got = new Map(etrnSite!.messages.map((m) => [m.to.join(), m.data]));
    const byRcpt = new Map<string, Buffer>();
    for (const [, bytes] of held)
      byRcpt.set(/\r\n\r\nfirst/.test(bytes.toString('latin1')) ? 'a@etrn.example' : 'c@etrn.example', bytes);
    for (const [rcpt, bytes] of byRcpt) assert.ok(got.get(rcpt)?.equals(bytes), `${rcpt}: byte for byte as held`);
    await waitFor(() => d!.logs.some((l) => l.event === 'queue.flush' && l.by === 'etrn'), 'queue.flush by etrn');
    assert.equal((await heldFor('etrn.example')).size, 0, 'the delivered messages left the queue');
    // @domain: the domain and the HoldDomains under it (the subdomain's one message)
    assert.equal(
      (await c.cmd('ETRN @etrn.example')).last,
      '253 2.0.0 OK, 1 pending messages for node @etrn.example started',
    );
    await waitFor(() => etrnSite!.messages.length === 3, 'the sub.etrn.example message');
    assert.deepEqual(etrnSite!.messages[2]!.to, ['b@sub.etrn.example']);
    assert.equal((await c.cmd('ETRN etrn.example')).last, '251 2.0.0 OK, no messages waiting for node etrn.example');
    // inside a transaction: refused (RFC 1985 §5)
    assert.match((await c.cmd('MAIL FROM:<x@remote.test>')).last, /^250 /);
    assert.equal((await c.cmd('ETRN etrn.example')).last, '503 5.5.1 ETRN is not allowed inside a mail transaction');
    c.close();

    // an authenticated stranger may ETRN
    const a = await SmtpClient.connect(d!.port, '127.0.0.1', '127.0.0.2');
    await a.greeting();
    await a.cmd('EHLO authed.test');
    const r = await a.cmd('AUTH CRAM-MD5');
    assert.match((await a.cmd(cramAnswer(r.last, 'other', OTHER_SECRET))).last, /^235 /);
    assert.equal((await a.cmd('ETRN empty.example')).last, '251 2.0.0 OK, no messages waiting for node empty.example');
    a.close();
    await waitFor(() => d!.logs.filter((l) => l.event === 'etrn.decision').length >= 11, 'eleven etrn.decision lines');
    const decisions = d!.logs.filter((l) => l.event === 'etrn.decision').map((l) => String(l.reply).slice(0, 3));
    assert.deepEqual(decisions, ['459', '501', '501', '251', '251', '459', '253', '253', '251', '503', '251']);
  },
);

test(
  "ODMR port: EHLO offers ATRN and AUTH CRAM-MD5; MAIL gets 502, ATRN before AUTH 530, a domain not the user's 450, nothing held 453",
  { skip },
  async () => {
    const c = await SmtpClient.connect(odmrPort, '127.0.0.1', '127.0.0.2');
    assert.equal((await c.greeting()).code, 220);
    const ehlo = await c.cmd('EHLO customer.test');
    const keywords = ehlo.lines.map((l) => l.slice(4));
    assert.ok(
      keywords.includes('ATRN') && keywords.includes('AUTH CRAM-MD5') && !keywords.includes('ETRN'),
      keywords.join(' | '),
    );
    assert.equal(
      (await c.cmd('MAIL FROM:<a@b.test>')).last,
      '502 5.5.1 MAIL is not offered on the On-Demand Mail Relay port',
    );
    assert.equal(
      (await c.cmd('ETRN odmr.example')).last,
      '502 5.5.1 ETRN is not offered on the On-Demand Mail Relay port',
    );
    assert.equal((await c.cmd('ATRN odmr.example')).last, '530 5.7.0 Authentication required');
    const r = await c.cmd('AUTH CRAM-MD5');
    assert.match((await c.cmd(cramAnswer(r.last, 'other', OTHER_SECRET))).last, /^235 /);
    assert.equal(
      (await c.cmd('ATRN odmr.example')).last,
      '450 4.7.1 ATRN request refused: odmr.example is not held for you',
    );
    assert.equal(
      (await c.cmd('ATRN other.example,odmr.example')).last,
      '450 4.7.1 ATRN request refused: odmr.example is not held for you',
    );
    assert.equal((await c.cmd('ATRN bad_domain!')).last, '501 5.5.4 Syntax: ATRN [domain[,domain...]]');
    assert.equal((await c.cmd('ATRN empty.example')).last, '453 4.2.0 You have no mail');
    assert.equal((await c.cmd('QUIT')).code, 221);
    c.close();
  },
);

test(
  "ODMR with fetchmail: CRAM-MD5, ATRN, the held mail of its domain delivered to its smtphost byte-identical; another user's domain refused",
  { skip },
  async () => {
    await hold(
      'alice@odmr.example',
      'Subject: for the customer\r\n\r\nline one\r\n.line with a leading dot\r\n..two dots\r\n',
    );
    await hold('bob@odmr.example', 'Subject: second\r\n\r\n' + 'y'.repeat(70_000) + '\r\n');
    await hold('carol@other.example', "Subject: not the customer's\r\n\r\nstays here\r\n");
    const held = await heldFor('odmr.example');
    assert.equal(held.size, 2);

    // the user odmr asking for other.example: refused, nothing delivered
    const refused = await runFetchmail('other.example', 'odmr', ODMR_SECRET);
    assert.match(refused.out, /ATRN request refused/, refused.out);
    assert.notEqual(refused.code, 0);
    assert.equal(customer!.messages.length, 0);

    const run = await runFetchmail('odmr.example', 'odmr', ODMR_SECRET);
    assert.match(run.out, /Turnaround now/, run.out);
    assert.ok(
      d!.logs.some(
        (l) =>
          l.event === 'auth.decision' &&
          l.method === 'CRAM-MD5' &&
          l.user === 'odmr' &&
          l.result === 'ok' &&
          l.ip === '127.0.0.1',
      ),
      'fetchmail authenticated with CRAM-MD5',
    );
    await waitFor(() => customer!.messages.length === 2, 'the two odmr.example messages at the customer');
    for (const m of customer!.messages) {
      const want = [...held.values()].find((b) => b.equals(m.data));
      assert.ok(want, `${m.to.join()}: byte-identical to the held message`);
    }
    assert.deepEqual(customer!.messages.map((m) => m.to.join()).sort(), ['alice@odmr.example', 'bob@odmr.example']);
    await waitFor(() => d!.logs.some((l) => l.event === 'atrn.done'), 'atrn.done');
    const done = d!.logs.find((l) => l.event === 'atrn.done')!;
    assert.equal(done.delivered, 2, JSON.stringify(done));
    assert.deepEqual(done.domains, ['odmr.example']);
    assert.equal((await heldFor('odmr.example')).size, 0, 'delivered mail left the queue');
    assert.equal((await heldFor('other.example')).size, 1, "the other user's domain stays held");
  },
);

/** A raw client of the ODMR port: one reply at a time, and the socket itself for the turnaround. */
function rawClient(
  port: number,
): Promise<{ socket: Socket; reply(): Promise<string>; cmd(line: string): Promise<string>; detach(): void }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1' });
    let buffer = '';
    let wake: (() => void) | null = null;
    const onData = (b: Buffer): void => {
      buffer += b.toString('latin1');
      wake?.();
    };
    socket.on('data', onData);
    socket.once('error', reject);
    const reply = async (): Promise<string> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const m = /^\d{3} .*\r\n/m.exec(buffer);
        if (m) {
          const end = m.index + m[0].length;
          const text = buffer.slice(0, end).trimEnd();
          buffer = buffer.slice(end);
          return text;
        }
        if (Date.now() > deadline) throw new Error(`no reply; have ${JSON.stringify(buffer)}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    };
    socket.once('connect', () =>
      resolve({
        socket,
        reply,
        cmd: (line) => {
          socket.write(`${line}\r\n`);
          return reply();
        },
        detach: () => {
          assert.equal(buffer, '', 'nothing unread before the turnaround');
          socket.off('data', onData);
        },
      }),
    );
  });
}

test(
  'bare ATRN: every domain of the user, over one reversed session, to a real SMTP server on the customer side',
  { skip },
  async () => {
    await hold('x@one.example', 'Subject: one\r\n\r\nfor one.example\r\n');
    await hold('y@two.example', 'Subject: two\r\n\r\nfor two.example\r\n');
    const held = new Map([...(await heldFor('one.example')), ...(await heldFor('two.example'))]);
    assert.equal(held.size, 2);
    const c = await rawClient(odmrPort);
    assert.match(await c.reply(), /^220 /);
    assert.match(await c.cmd('EHLO customer.test'), /^250[- ]ATRN$/m);
    const challenge = await c.cmd('AUTH CRAM-MD5');
    assert.match(await c.cmd(cramAnswer(challenge, 'multi', MULTI_SECRET)), /^235 /);
    assert.equal(await c.cmd('ATRN'), '250 2.0.0 OK now reversing the connection');
    // the roles reverse: the customer is an SMTP server now, on the same connection (RFC 2645 §5.3)
    c.detach();
    const received: { to: string[]; data: Buffer; helo: string }[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      name: 'customer.test',
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (b: Buffer) => chunks.push(b));
        stream.on('end', () => {
          received.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks),
            helo: session.hostNameAppearsAs,
          });
          cb();
        });
      },
    });
    const closed = new Promise<void>((r) => c.socket.once('close', () => r()));
    (server as unknown as { connect(socket: Socket): void }).connect(c.socket);
    await closed;
    assert.deepEqual(received.map((m) => m.to.join()).sort(), ['x@one.example', 'y@two.example']);
    for (const m of received) {
      assert.equal(m.helo, 'mx.example.test', 'we sent EHLO with our Hostname');
      assert.ok(
        [...held.values()].some((b) => b.equals(m.data)),
        `${m.to.join()}: byte-identical`,
      );
    }
    await waitFor(() => d!.logs.some((l) => l.event === 'atrn.done' && l.user === 'multi'), 'atrn.done of multi');
    const done = d!.logs.find((l) => l.event === 'atrn.done' && l.user === 'multi')!;
    assert.deepEqual(
      [done.domains, done.delivered, done.deferred, done.failed],
      [['one.example', 'two.example'], 2, 0, 0],
    );
    await new Promise<void>((r) => server.close(() => r()));
  },
);
