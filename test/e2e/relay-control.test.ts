/**
 * Relay control: a client outside RelayNet can only send to local recipients; the classic relay
 * tricks are refused with 550 5.7.1 for everyone. Local recipients: known account → 250,
 * unknown → 550 5.1.1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';

let d: Daemon;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'asmtpd-passwd-'));
  chmodSync(dir, 0o755); // the daemon reads PasswdFile after giving up root
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, 'u:x:1001:1001::/home/u:/bin/sh\nalice:x:1002:1002::/home/alice:/bin/sh\n');
  // 127.0.0.1 may relay; clients from 127.0.0.2 are "outside"
  d = await startDaemon({
    conf: `LocalDomain local.test\nLocalDomain second.test\nRelayNet 127.0.0.1/32\nPasswdFile ${passwd}`,
  });
});
after(async () => {
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function rcpt(address: string, from = '127.0.0.2'): Promise<string> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', from);
  await c.greeting();
  await c.cmd('EHLO outside.test');
  await c.cmd('MAIL FROM:<sender@outside.test>');
  const r = await c.cmd(`RCPT TO:<${address}>`);
  c.close();
  return r.last;
}

const TRICKS = [
  'u%other.example@local.test',
  '@local.test:u@other.example',
  '@local.test,@second.test:u@other.example',
  '"u@other.example"@local.test',
  'u@other.example@local.test',
  'other.example!u@local.test',
  '"other.example!u"@local.test',
  'u%other.example@[127.0.0.1]',
  'u@other.example',
  'u@OTHER.example.',
  'u@[192.0.2.1]',
];

for (const t of TRICKS) {
  test(`relay trick ${t} from outside RelayNet → 550 5.7.1`, async () => {
    assert.match(await rcpt(t), /^550 5\.7\.1 relaying denied/);
  });
}

test('routing characters are refused even from inside RelayNet', async () => {
  assert.match(await rcpt('u%other.example@local.test', '127.0.0.1'), /^550 5\.7\.1/);
  assert.match(await rcpt('other.example!u@local.test', '127.0.0.1'), /^550 5\.7\.1/);
});

test('RelayNet clients may relay to other domains', async () => {
  assert.equal(await rcpt('u@other.example', '127.0.0.1'), '250 2.1.5 recipient ok');
});

test('local recipients: account → 250, unknown → 550 5.1.1; domain case and trailing dot folded', async () => {
  assert.equal(await rcpt('alice@local.test'), '250 2.1.5 recipient ok');
  assert.equal(await rcpt('Alice@LOCAL.TEST.'), '250 2.1.5 recipient ok');
  assert.equal(await rcpt('alice@second.test'), '250 2.1.5 recipient ok');
  assert.equal(await rcpt('nobody@local.test'), '550 5.1.1 no such user here');
  assert.equal(await rcpt('postmaster@local.test'), '250 2.1.5 recipient ok');
  assert.equal(await rcpt('Postmaster'), '250 2.1.5 recipient ok');
});

test('every RCPT decision is logged with the reply', async () => {
  await rcpt('nobody@local.test');
  const l = await d.waitLog((x) => x.event === 'rcpt.decision' && x.to === 'nobody@local.test');
  assert.equal(l.reply, '550 5.1.1 no such user here');
  assert.equal(l.ip, '127.0.0.2');
  assert.ok(typeof l.sid === 'string' && typeof l.tid === 'string');
});
