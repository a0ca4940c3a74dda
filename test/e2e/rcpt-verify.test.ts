/**
 * RelayDomain recipient verification end to end (issue 18): the real daemon, clients over real
 * sockets, and a private Postfix as the backend of two relay domains, with a list of the recipients
 * it knows (virtual_mailbox_maps) and a policy service (check_policy_service) that counts every RCPT
 * it is asked — the verifications are the ones with the null sender. Backend connections are
 * counted in Postfix's log ("connect from").
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, testWorkers, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';

const unavailable = postfixUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs a real Postfix for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const MANY = Array.from({ length: 1000 }, (_, i) => `m${i}@a.test`);
const UNKNOWN = (a: string): string =>
  `550 5.1.1 <${a}>: Recipient address rejected: User unknown in virtual mailbox table`;

/** Postfix's policy delegation: every RCPT it is asked, with its sender. */
interface Policy {
  port: number;
  asked: { sender: string; recipient: string }[];
  verifications(recipient?: string): number;
  server: Server;
}

async function policyService(): Promise<Policy> {
  const asked: Policy['asked'] = [];
  const server = createServer((sock) => {
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const attrs = Object.fromEntries(
          buf
            .slice(0, end)
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        buf = buf.slice(end + 2);
        if (attrs.protocol_state === 'RCPT')
          asked.push({ sender: attrs.sender ?? '', recipient: attrs.recipient ?? '' });
        sock.write('action=DUNNO\n\n');
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    asked,
    verifications: (recipient) =>
      asked.filter((a) => a.sender === '' && (recipient === undefined || a.recipient === recipient)).length,
    server,
  };
}

let policy: Policy;
let pf: PostfixInstance;
let d: Daemon;

const connects = async (): Promise<number> => ((await pf.log()).match(/ connect from /g) ?? []).length;

function backendCf(p: Policy): Record<string, string> {
  return {
    smtpd_recipient_restrictions: `check_policy_service inet:127.0.0.1:${p.port}, reject_unlisted_recipient, permit_mynetworks, reject_unauth_destination`,
    // the delivery from asmtpd and the verifications must not be slowed by Postfix's error limits
    smtpd_error_sleep_time: '0',
  };
}

function relayConf(extra = ''): string {
  return [
    // loopback is not RelayNet here: the test clients are outsiders, whose recipients are verified
    'RelayNet 192.0.2.0/24',
    `RelayDomain a.test 127.0.0.1:${pf.port}`,
    `RelayDomain b.test 127.0.0.1:${pf.port}`,
    'RcptVerifyConnections 4',
    'MaxClientsPerIP 100',
    // these clients collect far more than 10 unknown recipients on purpose: no dictionary-attack block (issue 19)
    extra,
  ].join('\n');
}

before(async () => {
  if (unavailable) return;
  policy = await policyService();
  pf = await startPostfix({
    mode: 'maildir',
    recipients: ['alice@a.test', 'carol@a.test', 'bob@b.test', 'dave@c.test', ...MANY],
    mainCf: backendCf(policy),
  });
  d = await startDaemon({ conf: relayConf() });
});
after(async () => {
  await d?.stop();
  await pf?.stop();
  policy?.server.close();
});

/** the daemon's log lines of an event, once at least n of them are in */
async function logsOf(daemon: Daemon, event: string, n: number): Promise<Daemon['logs']> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = daemon.logs.filter((l) => l.event === event);
    if (lines.length >= n || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function session(port: number): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  return c;
}

test(
  'valid recipients accepted and delivered to the backend, unknown ones refused with its 5xx, per recipient',
  { skip },
  async () => {
    const c = await session(d.port);
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).last, '250 2.1.0 sender ok');
    assert.equal((await c.cmd('RCPT TO:<alice@a.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody@a.test>')).last, UNKNOWN('nobody@a.test'));
    assert.equal((await c.cmd('RCPT TO:<bob@b.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody@b.test>')).last, UNKNOWN('nobody@b.test'));
    assert.equal((await c.cmd('DATA')).code, 354);
    const end = await c.cmd('Subject: gateway\r\n\r\nhello backend\r\n.');
    assert.match(end.last, /^250 /);
    await c.cmd('QUIT');
    c.close();
    const files = await pf.waitForMessages(2, 20_000);
    const delivered = files.map((f) => /^Delivered-To: (.*)$/m.exec(readFileSync(f, 'latin1'))?.[1]).sort();
    assert.deepEqual(delivered, ['alice@a.test', 'bob@b.test']);
    assert.equal(policy.verifications(), 4, 'one verification per recipient');
    const unknown = await logsOf(d, 'rcpt.unknown', 2);
    assert.deepEqual(
      unknown.map((l) => [l.ip, l.to, l.source]),
      [
        ['127.0.0.1', 'nobody@a.test', 'backend'],
        ['127.0.0.1', 'nobody@b.test', 'backend'],
      ],
    );
    const decisions = (await logsOf(d, 'rcpt.decision', 4)).map((l) => [l.to, l.route, l.verify]);
    assert.deepEqual(decisions, [
      ['alice@a.test', 'relay-domain', 'valid'],
      ['nobody@a.test', 'relay-domain', 'invalid'],
      ['bob@b.test', 'relay-domain', 'valid'],
      ['nobody@b.test', 'relay-domain', 'invalid'],
    ]);
  },
);

test('the second RCPT for an address makes no backend query (cached valid and invalid)', { skip }, async () => {
  const before = policy.verifications();
  const c = await session(d.port);
  await c.cmd('MAIL FROM:<other@remote.test>');
  assert.equal((await c.cmd('RCPT TO:<alice@a.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@a.test>')).last, UNKNOWN('nobody@a.test'));
  c.close();
  assert.equal(policy.verifications(), before, 'no new question at the backend');
  const last = (await logsOf(d, 'rcpt.decision', 6)).slice(-2);
  assert.deepEqual(
    last.map((l) => l.verify),
    ['cached-valid', 'cached-invalid'],
  );
});

test('50 sessions asking for the same unknown address at once make one backend query', { skip }, async () => {
  const clients = await Promise.all(Array.from({ length: 50 }, () => session(d.port)));
  await Promise.all(clients.map((c) => c.cmd('MAIL FROM:<s@remote.test>')));
  const replies = await Promise.all(clients.map((c) => c.cmd('RCPT TO:<ghost@a.test>')));
  for (const c of clients) c.close();
  assert.ok(
    replies.every((r) => r.last === UNKNOWN('ghost@a.test')),
    replies.map((r) => r.last).join('\n'),
  );
  // one per SMTP process: the in-flight question is shared within a process (Workers N: per worker)
  assert.ok(policy.verifications('ghost@a.test') >= 1);
  assert.ok(policy.verifications('ghost@a.test') <= testWorkers());
});

test(
  '1,000 RCPTs for distinct addresses over 20 sessions use at most the pool size of backend connections',
  { skip },
  async () => {
    const before = await connects();
    const verifiedBefore = policy.verifications();
    await Promise.all(
      Array.from({ length: 20 }, async (_, s) => {
        const c = await session(d.port);
        await c.cmd('MAIL FROM:<s@remote.test>');
        for (let i = 0; i < 50; i++) {
          const r = await c.cmd(`RCPT TO:<${MANY[s * 50 + i]}>`);
          assert.equal(r.code, 250, r.last);
        }
        c.close();
      }),
    );
    assert.equal(policy.verifications() - verifiedBefore, 1000);
    const opened = (await connects()) - before;
    // the pool is per SMTP process (Workers N: RcptVerifyConnections per worker)
    assert.ok(
      opened <= 4 * testWorkers(),
      `${opened} new backend connections for 1,000 verifications (RcptVerifyConnections 4, ${testWorkers()} workers)`,
    );
  },
);

test('the cache survives a restart', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-verify-db-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dbDir = join(dir, 'db');
  const conf = (p: { port: number; etcDir: string; dnsServer: string }): string =>
    [
      `SMTPPort ${p.port}`,
      'BindAddr 127.0.0.1',
      `DBDir ${dbDir}`,
      `EtcDir ${p.etcDir}`,
      'Hostname mx.example.test',
      'DNSResolver system',
      `DNSServer ${p.dnsServer}`,
      'SMTPCB no',
      'SynFP no',
      relayConf(),
    ].join('\n') + '\n';
  const ask = async (daemon: Daemon): Promise<void> => {
    const c = await session(daemon.port);
    await c.cmd('MAIL FROM:<s@remote.test>');
    assert.equal((await c.cmd('RCPT TO:<carol@a.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody2@a.test>')).last, UNKNOWN('nobody2@a.test'));
    c.close();
  };
  const first = await startDaemon({ fullConf: conf });
  const before = policy.verifications();
  try {
    await ask(first);
  } finally {
    await first.stop();
  }
  assert.equal(policy.verifications(), before + 2);
  const second = await startDaemon({ fullConf: conf });
  try {
    await ask(second);
    assert.equal(policy.verifications(), before + 2, 'no backend query after the restart');
    assert.deepEqual(
      (await logsOf(second, 'rcpt.decision', 2)).map((l) => l.verify),
      ['cached-valid', 'cached-invalid'],
    );
  } finally {
    await second.stop();
  }
});

/** A backend that is down: takes TCP connections and closes them at once, counting them. */
async function deadBackend(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const srv = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as AddressInfo).port,
    connections: () => n,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

test(
  'backend down: the fallback answers; without one 451 4.4.1 and no connection during the backoff; recovery after',
  { skip },
  async () => {
    const dead = await deadBackend();
    const deadPort = dead.port;
    const d2 = await startDaemon({
      conf: [
        'RelayNet 192.0.2.0/24',
        `RelayDomain c.test 127.0.0.1:${deadPort},127.0.0.1:${pf.port}`,
        `RelayDomain d.test 127.0.0.1:${deadPort}`,
        'RcptVerifyBackoff 3s',
      ].join('\n'),
    });
    let pf2: PostfixInstance | null = null;
    try {
      const c = await session(d2.port);
      await c.cmd('MAIL FROM:<s@remote.test>');
      assert.equal((await c.cmd('RCPT TO:<dave@c.test>')).code, 250, 'the fallback knows dave');
      assert.equal((await c.cmd('RCPT TO:<nobody@c.test>')).last, UNKNOWN('nobody@c.test'));
      assert.equal(dead.connections(), 1);
      for (const who of ['x', 'y', 'z', 'w']) {
        const r = await c.cmd(`RCPT TO:<${who}@d.test>`);
        assert.equal(r.last, '451 4.4.1 cannot verify the recipient now, try again later');
      }
      assert.equal(dead.connections(), 1, 'no connection attempt during the backoff');
      const failed = await logsOf(d2, 'rcpt.verify_failed', 4);
      assert.equal(failed.length, 4);
      assert.match(String(failed[0]!.detail), /not tried again before/);
      c.close();
      // the backend comes back on its port: after the backoff it is asked again
      await dead.close();
      pf2 = await startPostfix({ mode: 'maildir', smtpdPort: deadPort, recipients: ['x@d.test'] });
      await new Promise((r) => setTimeout(r, 3200));
      const c2 = await session(d2.port);
      await c2.cmd('MAIL FROM:<s@remote.test>');
      assert.equal((await c2.cmd('RCPT TO:<x@d.test>')).code, 250);
      assert.equal((await c2.cmd('RCPT TO:<y@d.test>')).last, UNKNOWN('y@d.test'));
      c2.close();
    } finally {
      await d2.stop();
      await pf2?.stop();
      await dead.close().catch(() => undefined);
    }
  },
);

test('RcptVerifyTempfail no: a backend that cannot be asked lets the recipient through, logged', { skip }, async () => {
  const port = await freePort();
  const d3 = await startDaemon({
    conf: ['RelayNet 192.0.2.0/24', `RelayDomain e.test 127.0.0.1:${port}`, 'RcptVerifyTempfail no'].join('\n'),
  });
  try {
    const c = await session(d3.port);
    await c.cmd('MAIL FROM:<s@remote.test>');
    assert.equal((await c.cmd('RCPT TO:<anyone@e.test>')).code, 250);
    c.close();
    const decision = await d3.waitLog((l) => l.event === 'rcpt.decision');
    assert.equal(decision.verify, 'unverified');
    const failed = await d3.waitLog((l) => l.event === 'rcpt.verify_failed');
    assert.equal(failed.result, 'unverified');
    assert.match(String(failed.detail), /ECONNREFUSED/);
  } finally {
    await d3.stop();
  }
});

test('RcptVerifySkip exempts a client; RcptVerifySubdomains on and off', { skip }, async () => {
  const withSkip = await startDaemon({
    conf: ['RelayNet 192.0.2.0/24', `RelayDomain a.test 127.0.0.1:${pf.port}`, 'RcptVerifySkip 127.0.0.0/8'].join('\n'),
  });
  const before = policy.verifications();
  try {
    const c = await session(withSkip.port);
    await c.cmd('MAIL FROM:<s@remote.test>');
    assert.equal((await c.cmd('RCPT TO:<skipped-unknown@a.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@sub.a.test>')).last, '550 5.7.1 relaying denied', 'subdomains off');
    c.close();
    assert.equal(policy.verifications(), before, 'a skipped client is not verified');
    const [decision] = await logsOf(withSkip, 'rcpt.decision', 1);
    assert.equal(decision!.verify, 'skipped');
  } finally {
    await withSkip.stop();
  }
  const withSub = await startDaemon({
    conf: ['RelayNet 192.0.2.0/24', `RelayDomain a.test 127.0.0.1:${pf.port}`, 'RcptVerifySubdomains yes'].join('\n'),
  });
  try {
    const c = await session(withSub.port);
    await c.cmd('MAIL FROM:<s@remote.test>');
    const r = await c.cmd('RCPT TO:<alice@sub.a.test>');
    c.close();
    assert.equal(policy.verifications('alice@sub.a.test'), 1, 'asked of a.test’s backend');
    const [decision] = await logsOf(withSub, 'rcpt.decision', 1);
    assert.equal(decision!.route, 'relay-domain');
    // sub.a.test is none of the backend's address classes, and asmtpd is in its mynetworks: 250
    assert.equal(r.code, 250, r.last);
  } finally {
    await withSub.stop();
  }
});
