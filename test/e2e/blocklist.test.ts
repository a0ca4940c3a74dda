/**
 * Dictionary-attack blocking end to end (issue 19): the real daemon, clients over real sockets
 * from several 127.0.0.x source addresses, its own loopback DNS server (whose queries are
 * counted: a blocked client must cost none), and the exports consumed by the real tools —
 * rbldnsd answering a DNS query (and asmtpd using its zone as an RBL), postmap, nft in a network
 * namespace. Loopback is not RelayNet here: the clients are outsiders.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, ASMTPD_BIN, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { SmtpClient, type SmtpReply } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';
import { startPostfix, postfixUnavailableReason } from '../support/postfix.js';

let dns: DnsServer;
let d: Daemon;
const tmp = mkdtempSync(join(tmpdir(), 'asmtpd-blocklist-'));
chmodSync(tmp, 0o755);

const conf = (extra: string): string =>
  [
    'RelayNet 192.0.2.0/24',
    'DNSResolver system',
    `DNSServer 127.0.0.1:${dns.udp.port}`,
    'BlockUnknownRcpts 10 10m',
    /BlockTime /.test(extra) ? '' : 'BlockTime 3s',
    'BlockTimeMax 1m',
    'WhiteList 127.0.9.0/24',
    'MaxClientsPerIP 50',
    extra,
  ].join('\n');

before(async () => {
  dns = await startDnsServer({ doh: false });
  d = await startDaemon({ conf: conf('') });
});
after(async () => {
  await d?.stop();
  await dns?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const blockedLine = /^421 4\.7\.1 /;

/** EHLO and MAIL, then one RCPT per address until the connection is cut: the replies */
async function harvest(from: string, names: string[]): Promise<{ replies: SmtpReply[]; closed: boolean }> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  const replies: SmtpReply[] = [];
  const banner = await c.reply();
  if (banner.code !== 220) return { replies: [banner], closed: await c.waitClosed() };
  await c.cmd('EHLO harvester.test');
  await c.cmd('MAIL FROM:<spam@harvester.test>');
  for (const n of names) {
    const r = await c.cmd(`RCPT TO:<${n}@mx.example.test>`);
    replies.push(r);
    if (r.code === 421) break;
  }
  const cut = replies.at(-1)?.code === 421;
  if (!cut) await c.cmd('QUIT');
  const closed = await c.waitClosed();
  return { replies, closed: cut ? closed : false };
}

const randomNames = (n: number, tag: string): string[] =>
  Array.from({ length: n }, (_, i) => `${tag}${i}x${Math.random().toString(36).slice(2, 8)}`);

async function banner(from: string): Promise<{ reply: SmtpReply; closed: boolean }> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  const reply = await c.reply();
  const closed = reply.code === 220 ? (await c.cmd('QUIT'), true) : await c.waitClosed();
  return { reply, closed };
}

const cli = (...args: string[]) =>
  spawnSync(process.execPath, [ASMTPD_BIN, '--blocklist', '-f', d.confPath, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a harvester is cut after its 10th unknown recipient, refused at once without a DNS query, let in after BlockTime; a second offence doubles', async () => {
  const ip = '127.0.5.1';
  const first = await harvest(ip, randomNames(20, 'h'));
  const codes = first.replies.map((r) => r.code);
  assert.deepEqual(codes, [...Array(10).fill(550), 421], 'ten 550 5.1.1, then the 11th RCPT is cut');
  assert.match(first.replies[10]!.last, blockedLine);
  assert.ok(first.closed, 'the open session was closed');
  const added = await d.waitLog((l) => l.event === 'block.added' && l.ip === ip);
  assert.equal(added.net, `${ip}/32`);
  assert.equal(added.unknown, 10);
  assert.equal(added.duration_ms, 3000);

  // the next connection: 421 at once, no fact looked up (no DNS query at all for it)
  const queriesBefore = dns.queries.length;
  const again = await banner(ip);
  assert.match(again.reply.last, blockedLine);
  assert.ok(again.closed);
  await sleep(300);
  assert.equal(dns.queries.length - queriesBefore, 0, 'no DNS query for a blocked client');
  await d.waitLog((l) => l.event === 'session.blocked' && l.ip === ip && l.at === 'banner');
  // an ordinary client costs queries (the reverse name at least), for comparison
  const q0 = dns.queries.length;
  const ok = await banner('127.0.5.2');
  assert.equal(ok.reply.code, 220);
  await sleep(300);
  assert.ok(dns.queries.length > q0, 'an ordinary client is looked up');

  // after BlockTime (3 s) it may connect again; a second offence blocks for twice as long
  await sleep(3200);
  assert.equal((await banner(ip)).reply.code, 220);
  const second = await harvest(ip, randomNames(12, 'i'));
  assert.deepEqual(
    second.replies.map((r) => r.code),
    [...Array(10).fill(550), 421],
  );
  const added2 = await d.waitLog((l) => l.event === 'block.added' && l.ip === ip && l.offences === 2);
  assert.equal(added2.duration_ms, 6000);
  // the statistics the seed kept, per client
  await sleep(2500);
  const stats = cli('stats', ip);
  assert.equal(stats.status, 0, stats.stderr);
  assert.match(
    stats.stdout,
    new RegExp(`^${ip.replace(/\./g, '\\.')} connections 3 blocked 1 unknown-rcpts 20 messages 0 `),
  );
});

test('BlockNetmask 24: refusals from several addresses of one /24 add up to a block of the /24', async () => {
  d.writeConf(conf('BlockNetmask 24\nBlockTime 1m'));
  d.signal('SIGHUP');
  await d.waitLog((l) => l.event === 'daemon.reload');
  for (let i = 0; i < 5; i++) {
    const r = await harvest(`127.0.6.${10 + i}`, randomNames(2, `n${i}`));
    assert.deepEqual(
      r.replies.map((x) => x.code),
      [550, 550],
    );
  }
  const added = await d.waitLog((l) => l.event === 'block.added' && l.net === '127.0.6.0/24');
  assert.equal(added.unknown, 10);
  for (const last of [10, 99, 250]) assert.match((await banner(`127.0.6.${last}`)).reply.last, blockedLine);
  assert.equal((await banner('127.0.7.1')).reply.code, 220, 'the next /24 is not blocked');
  d.writeConf(conf(''));
  d.signal('SIGHUP');
  await sleep(500);
});

test('WhiteList and RelayNet clients are never blocked; two typos do not block', async () => {
  // WhiteList 127.0.9.0/24
  const w = await harvest('127.0.9.1', randomNames(25, 'w'));
  assert.equal(w.replies.length, 25);
  assert.ok(w.replies.every((r) => r.code === 550));
  assert.equal((await banner('127.0.9.1')).reply.code, 220);
  // a legitimate client with two typos, then its message goes through the RCPT stage
  const t = await harvest('127.0.8.1', ['rooot', 'postmastre']);
  assert.deepEqual(
    t.replies.map((r) => r.code),
    [550, 550],
  );
  assert.equal((await banner('127.0.8.1')).reply.code, 220);
  assert.equal(
    d.logs.filter((l) => l.event === 'block.added' && (l.ip === '127.0.9.1' || l.ip === '127.0.8.1')).length,
    0,
  );
});

test('RelayNet clients are never blocked (their unknown recipients are still logged and recorded)', async () => {
  const r = await startDaemon({ conf: 'RelayNet 127.0.0.0/8\nBlockUnknownRcpts 3 10m' });
  try {
    const c = await SmtpClient.connect(r.port, '127.0.0.1', '127.0.10.1');
    await c.reply();
    await c.cmd('EHLO relay.test');
    await c.cmd('MAIL FROM:<a@relay.test>');
    const codes: number[] = [];
    for (const n of randomNames(10, 'r')) codes.push((await c.cmd(`RCPT TO:<${n}@mx.example.test>`)).code);
    assert.deepEqual(codes, Array(10).fill(550));
    await c.cmd('QUIT');
    assert.equal(r.logs.filter((l) => l.event === 'block.added').length, 0);
    await r.waitLog(() => r.logs.filter((l) => l.event === 'rcpt.unknown').length === 10);
  } finally {
    await r.stop();
  }
});

test('--blocklist add and del reach the running daemon; export feeds postmap, rbldnsd and nft', async (t) => {
  const ip = '127.0.11.7';
  // a block.reload of its own: an earlier test's block may have been re-read (and logged) by a
  // worker's poll before the worker that added it told the others (Workers 2)
  const from = d.logs.length;
  const add = cli('add', ip, '1h');
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /^added 127\.0\.11\.7\/32 until .* offences 1 reason admin/);
  await d.waitLog((l) => l.event === 'block.reload' && d.logs.indexOf(l) >= from);
  assert.match((await banner(ip)).reply.last, blockedLine, 'added without a restart');
  assert.match(cli('list').stdout, /127\.0\.11\.7\/32 until/);
  cli('add', '2001:db8:1:2::5/64', '1h');

  // Postfix: the access map compiles and postmap -q finds the address
  const pf = cli('export', 'postfix');
  assert.equal(pf.status, 0);
  const map = join(tmp, 'access');
  writeFileSync(map, pf.stdout);
  const postmap = spawnSync('postmap', [`hash:${map}`], { encoding: 'utf8' });
  assert.equal(postmap.status, 0, postmap.stderr);
  const q = spawnSync('postmap', ['-q', ip, `hash:${map}`], { encoding: 'utf8' });
  assert.match(q.stdout, /^REJECT blocked by asmtpd/);

  // rbldnsd serves the ip4set; a DNS query finds the blocked address; asmtpd uses the zone as an RBL
  const zone = join(tmp, 'blocked.zone');
  writeFileSync(zone, cli('export', 'rbldnsd').stdout);
  const rport = await freePort();
  const rbldnsd: ChildProcess = spawn(
    'rbldnsd',
    ['-n', '-f', '-b', `127.0.0.1/${rport}`, '-r', tmp, 'bl.asmtpd.test:ip4set:blocked.zone'],
    { stdio: 'ignore' },
  );
  t.after(() => rbldnsd.kill());
  await sleep(500);
  const rbl = await startDaemon({
    conf: `DNSResolver system\nDNSServer 127.0.0.1:${rport}\nRelayNet 192.0.2.0/24\nRBL bl.asmtpd.test 1 blocked`,
  });
  try {
    const lookup = spawnSync(process.execPath, [ASMTPD_BIN, '--rbl', '-f', rbl.confPath], {
      input: `${ip}\n127.0.11.8\n`,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.match(lookup.stdout, /127\.0\.11\.7[\s\S]*bl\.asmtpd\.test/);
    assert.match(lookup.stdout, /blocked by asmtpd|127\.0\.0\.2/);
  } finally {
    await rbl.stop();
  }

  // nft loads the sets in a network namespace of our own
  const ns = `asmtpd-bl-${process.pid}`;
  const nftFile = join(tmp, 'blocked.nft');
  writeFileSync(nftFile, cli('export', 'nft').stdout);
  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  t.after(() => spawnSync('ip', ['netns', 'del', ns]));
  const load = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', nftFile], { encoding: 'utf8' });
  assert.equal(load.status, 0, load.stderr);
  const listed = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'set', 'inet', 'asmtpd', 'blocked4'], {
    encoding: 'utf8',
  });
  assert.match(listed.stdout, /127\.0\.11\.7/);

  // del: let in again without a restart
  const del = cli('del', ip);
  assert.equal(del.status, 0, del.stderr);
  await sleep(1500);
  assert.equal((await banner(ip)).reply.code, 220);
});

test('unknown recipients refused by a RelayDomain backend (a real Postfix) count too', async (t) => {
  const unavailable = postfixUnavailableReason();
  if (unavailable) return t.skip(unavailable);
  const pf = await startPostfix({
    mode: 'maildir',
    recipients: ['alice@a.test'],
    mainCf: { smtpd_error_sleep_time: '0' },
  });
  const r = await startDaemon({
    conf: `RelayNet 192.0.2.0/24\nRelayDomain a.test 127.0.0.1:${pf.port}\nBlockUnknownRcpts 3 10m\nBlockTime 1m`,
  });
  try {
    const c = await SmtpClient.connect(r.port, '127.0.0.1', '127.0.12.1');
    await c.reply();
    await c.cmd('EHLO harvester.test');
    await c.cmd('MAIL FROM:<spam@harvester.test>');
    const codes: number[] = [];
    for (const n of ['alice', ...randomNames(4, 'b')]) {
      const reply = await c.cmd(`RCPT TO:<${n}@a.test>`);
      codes.push(reply.code);
      if (reply.code === 421) break;
    }
    assert.deepEqual(codes, [250, 550, 550, 550, 421], 'the backend refused three: the fourth unknown is cut');
    const added = await r.waitLog((l) => l.event === 'block.added');
    assert.equal(added.unknown, 3);
    assert.equal(r.logs.filter((l) => l.event === 'rcpt.unknown' && l.source === 'backend').length, 3);
  } finally {
    await r.stop();
    await pf.stop();
  }
});
