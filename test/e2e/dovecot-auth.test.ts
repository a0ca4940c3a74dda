/**
 * DovecotAuth (issue 16, item 2) against a real Dovecot auth service (Debian's dovecot-core): its
 * passwd-file holds `doveadm pw` hashes of each scheme; asmtpd asks it over the inet listener
 * (one daemon) and the unix socket (another), both with InsecureAuth (the transport of AUTH is
 * test/e2e/auth.test.ts's subject). Dovecot's auth_failure_delay is 0 here.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { startDovecotAuth, type DovecotAuthService } from '../support/dovecot.js';

const DOVEADM = '/usr/bin/doveadm';
const skip =
  !existsSync('/usr/sbin/dovecot') || !existsSync(DOVEADM)
    ? 'Dovecot is not installed (apt-get install dovecot-core)'
    : process.getuid?.() !== 0
      ? 'a private Dovecot needs root'
      : false;

const USERS: Record<string, [string, string]> = {
  sha: ['SHA512-CRYPT', 'sha secret 1'],
  blf: ['BLF-CRYPT', 'blf secret 2'],
  argon: ['ARGON2ID', 'argon secret 3'],
};

let dv: DovecotAuthService;
let sink: Sink;
let inet: Daemon;
let unix: Daemon;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

before(async () => {
  if (skip) return;
  const lines = Object.entries(USERS).map(([name, [scheme, pw]]) => {
    const hash = execFileSync(DOVEADM, ['pw', '-s', scheme, '-p', pw], { encoding: 'utf8' }).trim();
    return `${name}:${hash}\n`;
  });
  dv = await startDovecotAuth(lines.join(''));
  sink = await startSink();
  const common = [
    'LocalDomain a.example',
    'RelayNet 10.99.0.0/16',
    `RelayHost 127.0.0.1:${sink.port}`,
    'InsecureAuth yes',
  ];
  inet = await startDaemon({ conf: [...common, `DovecotAuth inet:127.0.0.1:${dv.port}`].join('\n') });
  unix = await startDaemon({ conf: [...common, `DovecotAuth unix:${dv.socket}`].join('\n') });
});

after(async () => {
  if (skip) return;
  await inet?.stop();
  await unix?.stop();
  await sink?.close();
  await dv?.stop();
});

async function session(d: Daemon, from: string): Promise<SmtpClient> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  await c.greeting();
  const ehlo = await c.cmd('EHLO client.test');
  assert.match(ehlo.lines.join('\n'), /AUTH PLAIN LOGIN/);
  return c;
}

test(
  'every scheme through Dovecot, inet and unix: the right password 235 and relay, a wrong one 535',
  { skip },
  async () => {
    let ip = 50;
    for (const [d, via] of [
      [inet, 'inet'],
      [unix, 'unix'],
    ] as const) {
      for (const [user, [, password]] of Object.entries(USERS)) {
        const c = await session(d, `127.0.0.${ip++}`);
        assert.equal(
          (await c.cmd(`AUTH PLAIN ${b64(`\0${user}\0${password}x`)}`)).last,
          '535 5.7.8 authentication credentials invalid',
          `${via} ${user}`,
        );
        assert.equal((await c.cmd('AUTH LOGIN')).last, '334 VXNlcm5hbWU6');
        assert.equal((await c.cmd(b64(user))).last, '334 UGFzc3dvcmQ6');
        assert.match((await c.cmd(b64(password))).last, /^235 2\.7\.0 /, `${via} ${user}`);
        assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
        assert.equal((await c.cmd('RCPT TO:<x@other.example>')).last, '250 2.1.5 recipient ok');
        c.close();
      }
      const c = await session(d, `127.0.0.${ip++}`);
      assert.equal(
        (await c.cmd(`AUTH PLAIN ${b64('\0nobody\0sha secret 1')}`)).last,
        '535 5.7.8 authentication credentials invalid',
      );
      assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
      assert.equal((await c.cmd('RCPT TO:<x@other.example>')).last, '550 5.7.1 relaying denied');
      c.close();
    }
    const ok = await inet.waitLog((l) => l.event === 'auth.decision' && l.result === 'ok' && l.user === 'argon');
    assert.equal(ok.method, 'LOGIN');
    assert.ok(!JSON.stringify([...inet.logs, ...unix.logs]).includes('secret'), 'a password in the log');
  },
);

test('Dovecot gone: 451 4.3.0, not counted as a failure', { skip }, async () => {
  await dv.stop();
  const c = await session(inet, '127.0.0.70');
  assert.equal(
    (await c.cmd(`AUTH PLAIN ${b64('\0sha\0sha secret 1')}`)).last,
    '451 4.3.0 local error in processing, try again later',
  );
  c.close();
  const e = await inet.waitLog((l) => l.event === 'auth.decision' && l.result === 'error');
  assert.equal(e.ip, '127.0.0.70');
});
