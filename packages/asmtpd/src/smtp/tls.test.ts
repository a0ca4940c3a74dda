import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cipherBits, clearTextCommands, tlsOptions } from './tls.js';

test('cipherBits: from the suite name, as OpenSSL counts them', () => {
  assert.deepEqual(cipherBits('TLS_AES_256_GCM_SHA384'), { cipherBits: 256, algBits: 256 });
  assert.deepEqual(cipherBits('ECDHE-RSA-AES128-GCM-SHA256'), { cipherBits: 128, algBits: 128 });
  assert.deepEqual(cipherBits('TLS_CHACHA20_POLY1305_SHA256'), { cipherBits: 256, algBits: 256 });
  assert.deepEqual(cipherBits('DES-CBC3-SHA'), { cipherBits: 112, algBits: 168 });
  assert.deepEqual(cipherBits('NULL-SHA'), { cipherBits: 0, algBits: 0 });
});

const noAuth = { on: false, insecure: false, cramInClear: false };

test('tlsOptions: STARTTLS only with certificates; AUTH only with a backend, in clear only with InsecureAuth', () => {
  assert.deepEqual(tlsOptions({ kind: 'none' }, noAuth).hideSTARTTLS, true);
  assert.ok(tlsOptions({ kind: 'error', message: 'x' }, noAuth).disabledCommands.includes('STARTTLS'));
  const on = tlsOptions(
    { kind: 'ok', minVersion: 'TLSv1.3', pairs: [{ cert: Buffer.from('c'), key: Buffer.from('k'), certPath: '/c' }] },
    noAuth,
  );
  assert.equal(on.hideSTARTTLS, false);
  assert.ok(!on.disabledCommands.includes('STARTTLS'));
  assert.equal(on.minVersion, 'TLSv1.3');
  assert.ok(on.disabledCommands.includes('AUTH'), 'no backend: no AUTH');
  assert.deepEqual(tlsOptions({ kind: 'none' }, { on: true, insecure: false, cramInClear: false }).disabledCommands, [
    'AUTH',
    'STARTTLS',
  ]);
  assert.deepEqual(tlsOptions({ kind: 'none' }, { on: true, insecure: true, cramInClear: false }).disabledCommands, [
    'STARTTLS',
  ]);
});

test('CRAM-MD5 in clear (AuthCramMD5 yes): AUTH stays enabled without certificates and before STARTTLS', () => {
  const cram = { on: true, insecure: false, cramInClear: true };
  const none = tlsOptions({ kind: 'none' }, cram);
  assert.deepEqual(none.disabledCommands, ['STARTTLS']);
  assert.equal(clearTextCommands(none, cram), undefined);
  // without it, a session in clear has AUTH disabled until STARTTLS
  const plainOnly = { on: true, insecure: false, cramInClear: false };
  const withTls = { hideSTARTTLS: false, disabledCommands: [] };
  assert.deepEqual(clearTextCommands(withTls, plainOnly), ['AUTH']);
  assert.equal(clearTextCommands(withTls, cram), undefined);
});
