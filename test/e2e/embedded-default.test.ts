/**
 * The README's first command ends in `pnpm exec asmtpd -d`: without /etc/avenger/asmtpd.conf and
 * without -f, asmtpd runs on its embedded default — 127.0.0.1:2525, no MTA, accepted mail in the
 * hold-queue Maildir under DBDir (/var/spool/avenger as root, ~/.asmtpd otherwise).
 * Its DNS facts use the machine's resolver; this machine's /etc/resolv.conf points off the box, so
 * the daemon runs in a private mount namespace (unshare -m, root) whose /etc/resolv.conf names a
 * loopback DNS server of the test instead (port 53 on 127.0.0.53).
 *
 * Attack 7 of issue 13 (docs/security.md): at df3c8d8 the embedded default ran the SMTP process
 * and the system scripts as `nobody`, a uid shared with other services: any of them could signal
 * the daemon (SIGUSR1: the inspector) and reach everything the daemon could. Now the daemon runs
 * as its own account (asmtpd, created on first run), nothing of it runs as nobody, and a process
 * running as nobody cannot signal it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { SmtpClient } from '../support/smtp-client.js';
import { startDnsServer } from '../support/dns-server.js';
import { accountIds, processTree, runAs } from '../support/procs.js';

// the checkout whose `pnpm exec asmtpd` runs: this one, or ASMTPD_UNDER_TEST (test/support/daemon.ts)
const ROOT = process.env.ASMTPD_UNDER_TEST ?? new URL('../../../', import.meta.url).pathname;
const dbDir = process.getuid?.() === 0 ? '/var/spool/avenger' : join(homedir(), '.asmtpd');
const reason = existsSync('/etc/avenger/asmtpd.conf')
  ? 'skipped: /etc/avenger/asmtpd.conf exists on this machine, so the embedded default does not apply'
  : existsSync(dbDir)
    ? `skipped: ${dbDir} already exists and belongs to someone's asmtpd`
    : process.getuid?.() !== 0
      ? 'skipped: needs root (a private mount namespace for /etc/resolv.conf)'
      : false;

test(
  '`pnpm exec asmtpd -d` serves 127.0.0.1:2525 and keeps accepted mail in the hold queue',
  { skip: reason },
  async () => {
    const dns = await startDnsServer({ doh: false, host: '127.0.0.53', port: 53 });
    const tmp = mkdtempSync(join(tmpdir(), 'asmtpd-resolv-'));
    const resolvConf = join(tmp, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 127.0.0.53\n');
    const proc = spawn(
      'unshare',
      ['-m', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && exec pnpm exec asmtpd -d', 'sh', resolvConf],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!log.includes('"event":"daemon.start"')) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`asmtpd did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(log, /"config":"\(embedded default\)","port":2525,"addresses":\["127\.0\.0\.1"\]/);
      const c = await SmtpClient.connect(2525);
      assert.match((await c.greeting()).last, /^220 /);
      const r = await c.send('me@here.example', ['someone@elsewhere.example'], 'Subject: first run\r\n\r\nkept\r\n');
      assert.match(r.last, /^250 2\.0\.0 Ok: queued as /);
      c.close();
      assert.equal(readdirSync(join(dbDir, 'queue', 'new')).length, 1);
      // who runs it: the process listening on 2525 is the SMTP process
      const smtpPid = Number(
        /pid=(\d+),/.exec(execFileSync('ss', ['-ltnpH', 'sport = :2525'], { encoding: 'utf8' }))?.[1],
      );
      const tree = processTree(smtpPid);
      const nobody = accountIds('nobody');
      const kill = runAs(nobody.uid, nobody.gid, ['kill', '-0', String(smtpPid)]);
      assert.notEqual(kill.status, 0, 'a process of nobody cannot signal the SMTP process');
      assert.match(kill.stderr, /Operation not permitted/);
      assert.deepEqual(
        tree.filter((p) => p.uid.includes(nobody.uid)).map((p) => p.cmd),
        [],
        'nothing runs as nobody',
      );
      const asmtpd = accountIds('asmtpd');
      assert.deepEqual(
        tree[0]?.uid,
        [asmtpd.uid, asmtpd.uid, asmtpd.uid, asmtpd.uid],
        'the SMTP process is asmtpd, created on first run',
      );
      // the facts were asked of the resolver that resolv.conf names
      const names = dns.queries.map((q) => `${q.type} ${q.name}`);
      assert.ok(names.includes('PTR 1.0.0.127.in-addr.arpa'), names.join(', '));
      assert.ok(names.includes('TXT here.example'), names.join(', '));
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dbDir, { recursive: true, force: true });
      rmSync(tmp, { recursive: true, force: true });
      await dns.close();
    }
  },
);
