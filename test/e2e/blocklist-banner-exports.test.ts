/**
 * Dictionary-attack blocking end to end, the items blocklist.test.ts leaves (issue 19):
 *   - BlockAtBanner reject: a blocked client hears `554 5.7.1` as its banner and the connection is
 *     closed (smtp-server's refusal from onConnect: the reply, then end()), with no DNS query;
 *   - WhiteListFile: its networks (any number per line, comments) are never counted nor blocked,
 *     an admin's block does not apply to them, a bad word is reported as FILE:LINE, and a network
 *     added to the file counts from the next SIGHUP;
 *   - the `iptables` export loaded by the real `ipset restore` in a network namespace of our own,
 *     and the `rbldnsd6` export served by the real rbldnsd (ip6trie) answering IPv6 queries —
 *     through asmtpd --rbl, as any MTA would ask.
 * Needs root (ip netns); rbldnsd and ipset from Debian (.ci/run).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import { startDaemon, ASMTPD_BIN, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';

let dns: DnsServer;
const tmp = mkdtempSync(join(tmpdir(), 'asmtpd-blocklist-b-'));
chmodSync(tmp, 0o755);
const whiteListFile = join(tmp, 'whitelist');

const conf = (extra: string): string =>
  [
    'RelayNet 192.0.2.0/24',
    'DNSResolver system',
    `DNSServer 127.0.0.1:${dns.udp.port}`,
    'BlockUnknownRcpts 3 10m',
    'BlockTime 1h',
    'MaxClientsPerIP 50',
    extra,
  ].join('\n');

before(async () => {
  dns = await startDnsServer({ doh: false });
});
after(async () => {
  await dns?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(d: Daemon, ...args: string[]) {
  return spawnSync(process.execPath, [ASMTPD_BIN, '--blocklist', '-f', d.confPath, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

/** The banner, and whether the server closed the connection by itself after it. */
async function banner(d: Daemon, from: string): Promise<{ line: string; closed: boolean }> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  const reply = await c.reply();
  if (reply.code === 220) {
    await c.cmd('QUIT');
    return { line: reply.last, closed: false };
  }
  return { line: reply.last, closed: await c.waitClosed() };
}

/** One session: EHLO, MAIL, then RCPT to each unknown name until a 421: the RCPT codes. */
async function harvest(d: Daemon, from: string, n: number): Promise<number[]> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  const first = await c.reply();
  if (first.code !== 220) return [first.code];
  await c.cmd('EHLO harvester.test');
  await c.cmd('MAIL FROM:<spam@harvester.test>');
  const codes: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await c.cmd(`RCPT TO:<nobody${i}x${Math.random().toString(36).slice(2, 8)}@mx.example.test>`);
    codes.push(r.code);
    if (r.code === 421) break;
  }
  if (codes.at(-1) === 421) await c.waitClosed();
  else await c.cmd('QUIT');
  return codes;
}

test('BlockAtBanner reject: a blocked client gets 554 5.7.1 as its banner, then the connection is closed', async () => {
  const d = await startDaemon({ conf: conf('BlockAtBanner reject') });
  try {
    const ip = '127.0.13.1';
    // blocked by its own harvest: three unknown recipients, the fourth RCPT is cut (421 in a session)
    assert.deepEqual(await harvest(d, ip, 6), [550, 550, 550, 421]);
    await d.waitLog((l) => l.event === 'block.added' && l.ip === ip);
    const q0 = dns.queries.length;
    const b = await banner(d, ip);
    assert.equal(b.line, '554 5.7.1 too many unknown recipients from your network: connection refused');
    assert.ok(b.closed, 'closed by the server after the 554');
    const logged = await d.waitLog((l) => l.event === 'session.blocked' && l.ip === ip && l.at === 'banner');
    assert.match(String(logged.reply), /^554 5\.7\.1 /);
    await sleep(300);
    assert.equal(dns.queries.length - q0, 0, 'no DNS query for the refused connection');
    // an admin's block answers the same way; another client is not affected
    const from = d.logs.length; // a block.reload of its own, not one of an earlier block
    assert.equal(cli(d, 'add', '127.0.13.2', '1h').status, 0);
    await d.waitLog((l) => l.event === 'block.reload' && d.logs.indexOf(l) >= from);
    assert.match((await banner(d, '127.0.13.2')).line, /^554 5\.7\.1 /);
    assert.match((await banner(d, '127.0.13.3')).line, /^220 /);
  } finally {
    await d.stop();
  }
});

test('WhiteListFile: its networks are never counted nor blocked, an added network counts from the next SIGHUP', async () => {
  writeFileSync(
    whiteListFile,
    ['# partners', '127.0.14.0/24 127.0.15.7 # two on one line', 'not-a-network', '2001:db8:7::/48', ''].join('\n'),
  );
  const d = await startDaemon({ conf: conf(`WhiteListFile ${whiteListFile}`) });
  try {
    const issue = await d.waitLog((l) => JSON.stringify(l).includes(`${whiteListFile}:3`));
    assert.match(JSON.stringify(issue), /not-a-network/);
    // listed: ten unknown recipients in one session, all 550, no block; the next connection is welcome
    for (const ip of ['127.0.14.20', '127.0.15.7']) {
      const codes = await harvest(d, ip, 10);
      assert.deepEqual(codes, Array(10).fill(550), ip);
      assert.match((await banner(d, ip)).line, /^220 /, ip);
    }
    // an admin's block does not apply to a listed address
    const from = d.logs.length; // a block.reload of its own, not one of an earlier block
    assert.equal(cli(d, 'add', '127.0.14.21', '1h').status, 0);
    await d.waitLog((l) => l.event === 'block.reload' && d.logs.indexOf(l) >= from);
    assert.match((await banner(d, '127.0.14.21')).line, /^220 /);
    // not listed: blocked at the fourth RCPT
    assert.deepEqual(await harvest(d, '127.0.15.8', 10), [550, 550, 550, 421]);
    assert.equal(d.logs.filter((l) => l.event === 'block.added' && String(l.ip).startsWith('127.0.14.')).length, 0);
    assert.equal(d.logs.filter((l) => l.event === 'block.added' && l.ip === '127.0.15.7').length, 0);

    // a network added to the file: counted and blocked before, never after the SIGHUP
    assert.deepEqual(await harvest(d, '127.0.16.1', 10), [550, 550, 550, 421]);
    writeFileSync(whiteListFile, '127.0.14.0/24 127.0.15.7 127.0.16.0/24\n');
    d.signal('SIGHUP');
    await d.waitLog((l) => l.event === 'daemon.reload');
    assert.match((await banner(d, '127.0.16.1')).line, /^220 /, 'the block no longer applies');
    assert.deepEqual(await harvest(d, '127.0.16.2', 10), Array(10).fill(550));
  } finally {
    await d.stop();
  }
});

test('exports: `iptables` loads with the real ipset restore (netns), `rbldnsd6` is served by rbldnsd to IPv6 queries', async (t) => {
  const d = await startDaemon({ conf: conf('') });
  t.after(() => d.stop());
  for (const [net, time] of [
    ['127.0.17.7', '1h'],
    ['127.0.18.0/24', '1h'],
    ['2001:db8:1:2::/64', '1h'],
    ['2001:db8:9::5', '1h'],
  ] as const) {
    const r = cli(d, 'add', net, time);
    assert.equal(r.status, 0, r.stderr);
  }

  // ipset: the restore input loads in a namespace of our own; ipset test finds what is blocked
  const ns = `asmtpd-ipset-${process.pid}`;
  const file = join(tmp, 'blocked.ipset');
  const exported = cli(d, 'export', 'iptables');
  assert.equal(exported.status, 0, exported.stderr);
  writeFileSync(file, exported.stdout);
  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  t.after(() => spawnSync('ip', ['netns', 'del', ns]));
  const ipset = (...args: string[]) =>
    spawnSync('ip', ['netns', 'exec', ns, 'ipset', ...args], { encoding: 'utf8', input: '' });
  const restore = spawnSync('ip', ['netns', 'exec', ns, 'ipset', 'restore', '-file', file], { encoding: 'utf8' });
  assert.equal(restore.status, 0, restore.stderr);
  // loading it again (cron) replaces the contents: -exist and flush
  assert.equal(spawnSync('ip', ['netns', 'exec', ns, 'ipset', 'restore', '-file', file]).status, 0);
  const members = (set: string): string[] =>
    ipset('list', set)
      .stdout.split('\n')
      .slice(ipset('list', set).stdout.split('\n').indexOf('Members:') + 1)
      .filter(Boolean)
      .sort();
  assert.deepEqual(members('asmtpd-blocked4'), ['127.0.17.7', '127.0.18.0/24']);
  assert.deepEqual(members('asmtpd-blocked6'), ['2001:db8:1:2::/64', '2001:db8:9::5']);
  for (const [set, ip, inSet] of [
    ['asmtpd-blocked4', '127.0.17.7', true],
    ['asmtpd-blocked4', '127.0.18.200', true],
    ['asmtpd-blocked4', '127.0.17.8', false],
    ['asmtpd-blocked6', '2001:db8:1:2::abcd', true],
    ['asmtpd-blocked6', '2001:db8:1:3::1', false],
  ] as const)
    assert.equal(ipset('test', set, ip).status === 0, inSet, `${set} ${ip}`);

  // rbldnsd: the ip6trie data of rbldnsd6; asmtpd --rbl asks the zone for IPv6 clients
  writeFileSync(join(tmp, 'blocked6.zone'), cli(d, 'export', 'rbldnsd6').stdout);
  const rport = await freePort();
  const rbldnsd: ChildProcess = spawn(
    'rbldnsd',
    ['-n', '-f', '-b', `127.0.0.1/${rport}`, '-r', tmp, 'bl6.asmtpd.test:ip6trie:blocked6.zone'],
    { stdio: 'ignore' },
  );
  t.after(() => rbldnsd.kill());
  await sleep(500);
  const rbl = await startDaemon({
    conf: `DNSResolver system\nDNSServer 127.0.0.1:${rport}\nRelayNet 192.0.2.0/24\nRBL bl6.asmtpd.test 1 blocked`,
  });
  t.after(() => rbl.stop());
  const ask = (ip: string): string =>
    spawnSync(process.execPath, [ASMTPD_BIN, '--rbl', '-f', rbl.confPath], {
      input: `${ip}\n`,
      encoding: 'utf8',
      timeout: 30_000,
    }).stdout;
  for (const ip of ['2001:db8:1:2::abcd', '2001:db8:9::5']) {
    const out = ask(ip);
    assert.match(out, /bl6\.asmtpd\.test/, `${ip}: ${out}`);
    assert.match(out, /blocked by asmtpd|127\.0\.0\.2/, out);
  }
  for (const ip of ['2001:db8:1:3::1', '2001:db8:9::6']) assert.doesNotMatch(ask(ip), /bl6\.asmtpd\.test/, ip);
  // the query itself: 32 reversed nibbles under the zone, asked of rbldnsd directly
  const resolver = new Resolver();
  resolver.setServers([`127.0.0.1:${rport}`]);
  assert.deepEqual(await resolver.resolve4(nibbles('2001:db8:9::5')), ['127.0.0.2']);
  assert.match((await resolver.resolveTxt(nibbles('2001:db8:1:2::abcd'))).flat().join(''), /blocked by asmtpd/);
  await assert.rejects(resolver.resolve4(nibbles('2001:db8:1:3::1')), { code: 'ENOTFOUND' });
});

function nibbles(ip: string): string {
  const [h = '', tl = ''] = ip.split('::');
  const hp = h ? h.split(':') : [];
  const tp = tl ? tl.split(':') : [];
  const groups = [...hp, ...Array<string>(8 - hp.length - tp.length).fill('0'), ...tp];
  const hex = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...hex].reverse().join('.')}.bl6.asmtpd.test`;
}
