/**
 * Every AuthFile scheme against hashes Dovecot made (`doveadm pw`): fixed ones below (made with
 * Dovecot 2.3 for the password PASSWORD), and fresh ones when doveadm is installed (CI has it).
 * The right password passes, a wrong one, a prefix of it and an empty one fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePasswordField } from '../config/auth-file.js';
import { verifyPassword } from './password-hash.js';
import { createAuthFile } from './authenticator.js';

const PASSWORD = 'correct horse battery staple';
const WRONG = ['correct horse battery stapl', 'Correct horse battery staple', '', 'x'];

/** `doveadm pw -s SCHEME -p 'correct horse battery staple'` */
const FIXTURES: Record<string, string> = {
  'SHA512-CRYPT':
    '{SHA512-CRYPT}$6$04whsEvzKd118p4F$zZD7Zf3Hm2j.Nl2jF2z39rEHxrfBM0C2Qk5ccoTObvtEzzF8jBGbYmQX8NGNRq01nVvPiRAXr51yLjBDnNo5X.',
  'BLF-CRYPT': '{BLF-CRYPT}$2y$05$jlvWU9Kq6mBIzXELrpqcE.VxHoHZ./2PWyt4DRGKRGHx/BestFBjS',
  ARGON2ID:
    '{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$H5IuKH8mLJ2rcmO5GtBj3Q$NHHu6Zop877F0+eNpttaRp7PpSWaX5FfdkuQp2rqwyA',
  ARGON2I: '{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$UnZenAHTFuUwKMyumh6iEQ$jy8HK9SCp9cOWxMxITJClbiRH5bm614dsI9aNapV2v0',
};

const DOVEADM = '/usr/bin/doveadm';
const doveadmMissing = existsSync(DOVEADM) ? false : 'doveadm is not installed (apt-get install dovecot-core)';

async function assertVerifies(field: string): Promise<void> {
  const parsed = parsePasswordField(field);
  assert.ok(!('error' in parsed), `${field}: ${JSON.stringify(parsed)}`);
  assert.equal(await verifyPassword(parsed, PASSWORD), true, `${field}: the right password`);
  for (const w of WRONG) assert.equal(await verifyPassword(parsed, w), false, `${field}: ${JSON.stringify(w)}`);
}

for (const [scheme, field] of Object.entries(FIXTURES)) {
  test(`${scheme}: a fixed doveadm hash verifies the right password only`, async () => {
    await assertVerifies(field);
    // the bare crypt string (Dovecot's default scheme CRYPT) is the same hash
    await assertVerifies(field.replace(/^\{[^}]*\}/, ''));
  });
}

test('BLF-CRYPT: $2b$ and $2a$ spellings of a $2y$ hash verify too', async () => {
  const field = FIXTURES['BLF-CRYPT']!;
  await assertVerifies(field.replace('$2y$', '$2b$'));
  await assertVerifies(field.replace('$2y$', '$2a$'));
});

for (const scheme of ['SHA512-CRYPT', 'BLF-CRYPT', 'ARGON2ID', 'ARGON2I']) {
  test(`${scheme}: a fresh hash from doveadm pw`, { skip: doveadmMissing }, async () => {
    const field = execFileSync(DOVEADM, ['pw', '-s', scheme, '-p', PASSWORD], { encoding: 'utf8' }).trim();
    assert.ok(field.startsWith(`{${scheme}}`), field);
    await assertVerifies(field);
  });
}

test('a hash that is damaged fails, it does not throw', async () => {
  for (const field of Object.values(FIXTURES)) {
    const parsed = parsePasswordField(field);
    assert.ok(!('error' in parsed));
    const damaged = { kind: parsed.kind, hash: parsed.hash.slice(0, -4) + 'AAAA' };
    assert.equal(await verifyPassword(damaged, PASSWORD), false, field);
    assert.equal(await verifyPassword({ kind: parsed.kind, hash: 'garbage' }, PASSWORD), false, field);
  }
});

test('createAuthFile: users checked, names in any case, the file re-read when it changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-auth-'));
  try {
    const path = join(dir, 'users');
    writeFileSync(path, `Alice:${FIXTURES['SHA512-CRYPT']}\nbob:${FIXTURES['BLF-CRYPT']}\n`);
    const auth = createAuthFile(path, { checkIntervalMs: 0 });
    assert.deepEqual(await auth.check('alice', PASSWORD), { kind: 'ok', user: 'Alice' });
    assert.deepEqual(await auth.check('BOB', PASSWORD), { kind: 'ok', user: 'bob' });
    assert.deepEqual(await auth.check('bob', 'nope'), { kind: 'failed', reason: 'wrong-password' });
    assert.deepEqual(await auth.check('carol', PASSWORD), { kind: 'failed', reason: 'unknown-user' });
    writeFileSync(path, `carol:${FIXTURES.ARGON2ID}\n`);
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.deepEqual(await auth.check('carol', PASSWORD), { kind: 'ok', user: 'carol' });
    assert.deepEqual(await auth.check('alice', PASSWORD), { kind: 'failed', reason: 'unknown-user' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
