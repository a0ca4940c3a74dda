/** --check prints FILE:LINE: message and exits 2; SIGHUP applies a good file and refuses a broken one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN, startDaemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';

test('asmtpd --check reports every error as FILE:LINE: message, exit 2; a clean file exits 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-check-'));
  const bad = join(dir, 'bad.conf');
  writeFileSync(bad, '# comment\nSMTPPort 99999\nMaxClients ten\nFrobnicate yes\nsmtpport 25\n');
  const r = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  const lines = r.stdout.trim().split('\n');
  assert.ok(
    lines.some((l) => l.startsWith(`${bad}:2: `)),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => l.startsWith(`${bad}:3: `)),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => l.startsWith(`${bad}:4: `) && /Frobnicate/.test(l)),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => l.startsWith(`${bad}:5: `)),
    'a directive given twice (names are case-insensitive)',
  );
  const good = join(dir, 'good.conf');
  writeFileSync(good, 'SMTPPort 2525\nmaxclients 10\n');
  const ok = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', good], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  // the daemon refuses to start on a bad file, with the same lines and exit 2
  const start = spawnSync(process.execPath, [ASMTPD_BIN, '-d', '-f', bad], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(start.status, 2);
  assert.match(start.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: `));
  rmSync(dir, { recursive: true, force: true });
});

test('asmtpd --check also parses the DomainFile, AliasFile and SPFHostsFile it names: a bad line is FILE:LINE, exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-check-data-'));
  const domains = join(dir, 'domains');
  const aliases = join(dir, 'aliases');
  const spfHosts = join(dir, 'spfhosts');
  writeFileSync(domains, 'virtual.example bob+net\nbroken-line-without-user\n');
  writeFileSync(aliases, 'postmaster: root\nsales alice\n');
  writeFileSync(spfHosts, 'good.example v=spf1 mx -all\nbad.example v=spf1 ip4:300.0.0.1 -all\n');
  const conf = join(dir, 'asmtpd.conf');
  writeFileSync(conf, `DomainFile ${domains}\nAliasFile ${aliases}\nSPFHostsFile ${spfHosts}\n`);
  const r = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', conf], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stdout);
  assert.ok(
    r.stdout.split('\n').some((l) => l.startsWith(`${domains}:2: `)),
    r.stdout,
  );
  assert.ok(
    r.stdout.split('\n').some((l) => l.startsWith(`${aliases}:2: `)),
    r.stdout,
  );
  assert.ok(
    r.stdout.split('\n').some((l) => l.startsWith(`${spfHosts}:2: `)),
    r.stdout,
  );
  assert.doesNotMatch(r.stdout, /OK \(/);
  writeFileSync(domains, 'virtual.example bob+net\n');
  writeFileSync(aliases, 'postmaster: root\n');
  writeFileSync(spfHosts, 'good.example v=spf1 mx -all\n');
  const ok = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', conf], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout);
  assert.match(ok.stdout, /OK \(3 directives\)/);
  rmSync(dir, { recursive: true, force: true });
});

test('SIGHUP: a broken file is refused and the daemon keeps serving on the old config; a good one applies', async () => {
  const d = await startDaemon({ conf: 'MaxRcpts 1\nRelayNet 127.0.0.0/8' });
  try {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@x.test>');
    d.writeConf('MaxRcpts lots\nRelayNet 127.0.0.0/8');
    d.signal('SIGHUP');
    const failed = await d.waitLog((l) => l.event === 'daemon.reload_failed');
    assert.match(JSON.stringify(failed.errors), /asmtpd\.conf:\d+: /);
    // the session that was open keeps going, and new sessions are served with the old limits
    assert.match((await c.cmd('RCPT TO:<r1@elsewhere.test>')).last, /^250/);
    assert.match((await c.cmd('RCPT TO:<r2@elsewhere.test>')).last, /^452 4\.5\.3/);
    c.close();
    const c2 = await SmtpClient.connect(d.port);
    assert.match((await c2.greeting()).last, /^220 /);
    c2.close();
    d.writeConf('MaxRcpts 3\nRelayNet 127.0.0.0/8');
    d.signal('SIGHUP');
    await d.waitLog((l) => l.event === 'daemon.reload');
    const c3 = await SmtpClient.connect(d.port);
    await c3.greeting();
    await c3.cmd('EHLO client.test');
    await c3.cmd('MAIL FROM:<a@x.test>');
    for (const r of ['r1', 'r2', 'r3']) assert.match((await c3.cmd(`RCPT TO:<${r}@elsewhere.test>`)).last, /^250/);
    c3.close();
  } finally {
    await d.stop();
  }
});

test('SIGTERM stops the daemon with exit 0', async () => {
  const d = await startDaemon();
  assert.equal(await d.stop(), 0);
});
