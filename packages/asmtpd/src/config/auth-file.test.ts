import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAuthFile, parseAuthFile, parsePasswordField } from './auth-file.js';

const SHA = '$6$abcdefgh$' + 'a'.repeat(86);
const BLF = '$2y$05$' + 'b'.repeat(53);
const ARGON = '$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo';

test('password fields: each scheme, prefixed or bare, and what is refused', () => {
  const cases: [string, string][] = [
    [`{SHA512-CRYPT}${SHA}`, 'sha512-crypt'],
    [`{sha512-crypt}${SHA}`, 'sha512-crypt'],
    [SHA, 'sha512-crypt'],
    [`{CRYPT}${SHA}`, 'sha512-crypt'],
    [`{BLF-CRYPT}${BLF}`, 'bcrypt'],
    [BLF.replace('$2y$', '$2b$'), 'bcrypt'],
    [`{ARGON2ID}${ARGON}`, 'argon2'],
    [ARGON, 'argon2'],
    [`{ARGON2I}${ARGON.replace('argon2id', 'argon2i')}`, 'argon2'],
    // AUTH CRAM-MD5 (AuthCramMD5): Dovecot's CRAM-MD5 context, or the secret itself
    ['{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56', 'cram-md5'],
    ['{PLAIN}secret', 'plain'],
  ];
  for (const [field, kind] of cases)
    assert.deepEqual(parsePasswordField(field), { kind, hash: field.replace(/^\{[^}]*\}/, '') }, field);
  const refused: [string, RegExp][] = [
    ['{PLAIN-MD5}secret', /unknown password scheme \{PLAIN-MD5\}/],
    ['{CRAM-MD5}cd3ba7', /not a CRAM-MD5 hash/],
    ['{PLAIN}', /empty password/],
    ['{SSHA}abc', /unknown password scheme \{SSHA\}/],
    ['{}x', /unknown password scheme \{\}/],
    ['abJnggxhB/yWI', /DES and MD5 crypt are not accepted/],
    ['$1$salt$hash', /not a SHA512-CRYPT/],
    [`{BLF-CRYPT}${SHA}`, /not a BLF-CRYPT hash/],
    [`{ARGON2ID}${ARGON.replace('argon2id', 'argon2i')}`, /not a ARGON2ID hash/],
    ['', /empty password/],
  ];
  for (const [field, message] of refused) {
    const r = parsePasswordField(field);
    assert.ok('error' in r && message.test(r.error), `${field}: ${JSON.stringify(r)}`);
  }
});

test('AuthFile lines: comments, extra fields, CRLF, case of names, duplicates and bad lines with their line', () => {
  const text = [
    '# users',
    '',
    `alice:{SHA512-CRYPT}${SHA}:1000:1000::/home/alice::`,
    `Bob:${BLF}\r`,
    'carol:{SSHA}pw',
    'no colon here',
    `ALICE:${ARGON}`,
    `dave:{ARGON2ID}${ARGON}`,
  ].join('\n');
  const { value, issues } = parseAuthFile(text, '/etc/auth');
  assert.deepEqual([...value.keys()], ['alice', 'bob', 'dave']);
  assert.deepEqual(value.get('bob'), { user: 'Bob', kind: 'bcrypt', hash: BLF });
  assert.equal(value.get('alice')?.hash, SHA);
  assert.deepEqual(
    issues.map((i) => `${i.line}: ${i.message}`),
    [
      `5: carol: unknown password scheme {SSHA} (supported: SHA512-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I, CRYPT, CRAM-MD5, PLAIN)`,
      '6: not a `user:{SCHEME}hash` line',
      '7: ALICE: given twice (the first line counts)',
    ],
  );
});

test('checkAuthFile: FILE:LINE problems for --check, and a missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-authfile-'));
  try {
    const path = join(dir, 'users');
    writeFileSync(path, `a:${SHA}\nb:{MD5}x\n`);
    assert.deepEqual(checkAuthFile(path), [
      `${path}:2: b: unknown password scheme {MD5} (supported: SHA512-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I, CRYPT, CRAM-MD5, PLAIN)`,
    ]);
    assert.deepEqual(checkAuthFile(join(dir, 'none')), [`${join(dir, 'none')}: no such file`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
