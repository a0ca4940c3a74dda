/**
 * `asmtpd --verify ADDRESS` (issue 18) against a private Postfix backend: valid, invalid, cached
 * (the daemon's own answer in its state database, with the expiry) and backend down.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, ASMTPD_BIN, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';

const unavailable = postfixUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs a real Postfix for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let pf: PostfixInstance;
let d: Daemon;
let dead: number;

before(async () => {
  if (unavailable) return;
  [pf, dead] = await Promise.all([
    startPostfix({
      mode: 'maildir',
      recipients: ['alice@a.test', 'zoe@a.test'],
      mainCf: { smtpd_error_sleep_time: '0' },
    }),
    freePort(),
  ]);
  d = await startDaemon({
    conf: [
      'RelayNet 192.0.2.0/24',
      `RelayDomain a.test 127.0.0.1:${pf.port}`,
      `RelayDomain down.test 127.0.0.1:${dead}`,
    ].join('\n'),
  });
});
after(async () => {
  await d?.stop();
  await pf?.stop();
});

function verify(address: string): { code: number | null; out: string } {
  const r = spawnSync(ASMTPD_BIN, ['--verify', '-f', d.confPath, address], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

test('valid: asks the backend, prints its answer, exit 0', { skip }, () => {
  const r = verify('alice@a.test');
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^route: relay domain a\.test, backends 127\.0\.0\.1:\d+$/m);
  assert.match(r.out, /^cache: (not cached|none)/m);
  assert.match(r.out, /^answer: valid \(250 2\.1\.5 Ok\)$/m);
  assert.match(r.out, /^RCPT_VERIFY: valid$/m);
});

test('invalid: the backend 5xx, exit 3', { skip }, () => {
  const r = verify('nobody@a.test');
  assert.equal(r.code, 3, r.out);
  assert.match(r.out, /^answer: invalid \(550 5\.1\.1 <nobody@a\.test>: Recipient address rejected: User unknown/m);
});

test('cached: the daemon answered before; printed with the expiry, the backend not asked', { skip }, async () => {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<s@remote.test>');
  assert.equal((await c.cmd('RCPT TO:<zoe@a.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<ghost@a.test>')).code, 550);
  await c.cmd('QUIT');
  c.close();
  const asked = async (): Promise<number> => ((await pf.log()).match(/RCPT from/g) ?? []).length;
  const before = await asked();
  const valid = verify('Zoe@A.test');
  assert.equal(valid.code, 0, valid.out);
  assert.match(valid.out, /^cache: valid, expires \d{4}-\d\d-\d\dT[\d:.]+Z \(in 8[0-9]{4} s\)$/m);
  assert.match(valid.out, /^RCPT_VERIFY: cached-valid$/m);
  const invalid = verify('ghost@a.test');
  assert.equal(invalid.code, 3, invalid.out);
  assert.match(invalid.out, /^cache: invalid, expires .* \(in (29[0-9]{2}|3000) s\)$/m);
  assert.match(invalid.out, /^answer: 550 5\.1\.1 <ghost@a\.test>: Recipient address rejected/m);
  assert.equal(await asked(), before, 'no question to the backend');
  // started as root, --verify read the database as its owner: none of its files became root's
  if (process.getuid?.() === 0)
    for (const f of readdirSync(d.dbDir).filter((n) => n.startsWith('state.sqlite')))
      assert.notEqual(statSync(join(d.dbDir, f)).uid, 0, f);
});

test(
  'backend down: each backend tried and why, the tempfail setting, exit 1; not a relay domain: exit 2',
  { skip },
  () => {
    const r = verify('x@down.test');
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, new RegExp(`^asked: 127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`, 'm'));
    assert.match(r.out, /^RCPT_VERIFY: tempfail \(RcptVerifyTempfail yes: 451 4\.4\.1 to the client\)$/m);
    const other = verify('x@elsewhere.test');
    assert.equal(other.code, 2, other.out);
    assert.match(other.out, /is not a relay domain/);
  },
);
