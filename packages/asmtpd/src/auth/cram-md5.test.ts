/**
 * CRAM-MD5 answers (RFC 2195) from a secret and from Dovecot's `{CRAM-MD5}` contexts: RFC 2195's
 * own example, fixed `doveadm pw -s CRAM-MD5` values, and fresh ones when doveadm is installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cramContext, cramDigestFromContext, cramDigestFromSecret } from './cram-md5.js';
import { verifyCramMd5, verifyPassword } from './password-hash.js';
import { parsePasswordField } from '../config/auth-file.js';

// RFC 2195 §2: user tim, secret tanstaaftanstaaf
const CHALLENGE = '<1896.697170952@postoffice.reston.mci.net>';
const ANSWER = 'b913a602c7eda7a495b4e6e7334d3890';
/** `doveadm pw -s CRAM-MD5 -p …` (Dovecot 2.3) */
const DOVEADM_FIXED: Record<string, string> = {
  secret: 'cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56',
  tanstaaftanstaaf: 'd06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b',
};

test("RFC 2195's example: from the secret and from its Dovecot context", () => {
  assert.equal(cramDigestFromSecret('tanstaaftanstaaf', CHALLENGE), ANSWER);
  assert.equal(cramDigestFromContext(DOVEADM_FIXED.tanstaaftanstaaf!, CHALLENGE), ANSWER);
});

test('cramContext makes what doveadm pw -s CRAM-MD5 makes', () => {
  for (const [secret, context] of Object.entries(DOVEADM_FIXED)) assert.equal(cramContext(secret), context);
});

test('long secrets (hashed first, RFC 2104) and long challenges agree with node:crypto HMAC-MD5', () => {
  for (const secret of ['x'.repeat(64), 'y'.repeat(65), 'ü'.repeat(100), 'a']) {
    for (const challenge of ['', '<1.2@h>', 'c'.repeat(55), 'c'.repeat(56), 'c'.repeat(200)]) {
      assert.equal(cramDigestFromContext(cramContext(secret), challenge), cramDigestFromSecret(secret, challenge));
    }
  }
});

test('verifyCramMd5: {CRAM-MD5} and {PLAIN} entries answer, crypt hashes cannot; PLAIN/LOGIN passwords verify too', async () => {
  const cram = parsePasswordField(`{CRAM-MD5}${DOVEADM_FIXED.tanstaaftanstaaf}`);
  const plain = parsePasswordField('{PLAIN}tanstaaftanstaaf');
  assert.ok(!('error' in cram) && !('error' in plain));
  for (const e of [cram, plain]) {
    assert.equal(verifyCramMd5(e, CHALLENGE, ANSWER), true);
    assert.equal(verifyCramMd5(e, CHALLENGE, ANSWER.toUpperCase()), true);
    assert.equal(verifyCramMd5(e, CHALLENGE, ANSWER.replace(/.$/, '1')), false);
    assert.equal(verifyCramMd5(e, CHALLENGE + 'x', ANSWER), false);
    assert.equal(verifyCramMd5(e, CHALLENGE, ''), false);
    assert.equal(await verifyPassword(e, 'tanstaaftanstaaf'), true);
    assert.equal(await verifyPassword(e, 'tanstaaftanstaa'), false);
  }
  assert.equal(verifyCramMd5({ kind: 'sha512-crypt', hash: '$6$x$y' }, CHALLENGE, ANSWER), false);
  assert.deepEqual(parsePasswordField('{CRAM-MD5}abc'), { error: 'not a CRAM-MD5 hash' });
  assert.ok('error' in parsePasswordField('{PLAIN}'));
});

const DOVEADM = '/usr/bin/doveadm';
test(
  'fresh doveadm pw -s CRAM-MD5 contexts answer as the secret does',
  { skip: existsSync(DOVEADM) ? false : 'doveadm is not installed' },
  () => {
    for (const secret of ['correct horse battery staple', 'p:a;s s']) {
      const field = execFileSync(DOVEADM, ['pw', '-s', 'CRAM-MD5', '-p', secret], { encoding: 'utf8' }).trim();
      const parsed = parsePasswordField(field);
      assert.ok(!('error' in parsed), field);
      assert.equal(verifyCramMd5(parsed, CHALLENGE, cramDigestFromSecret(secret, CHALLENGE)), true);
    }
  },
);
