/** ATRN's argument (RFC 2645 §5.2: `[SP domain *("," domain)]`) and the AUTH mechanisms a session is offered. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atrnArgument } from './atrn.js';
import { authMethodsFor } from './auth.js';
import { domainsOfUser } from '../held-mail.js';
import { testConfig } from '../../testing/relay.js';

test('atrnArgument: none, one, several (lower-cased, duplicates once); bad syntax is null', () => {
  assert.deepEqual(atrnArgument(''), []);
  assert.deepEqual(atrnArgument('Example.ORG'), ['example.org']);
  assert.deepEqual(atrnArgument('a.test,b.test,A.test'), ['a.test', 'b.test']);
  for (const bad of ['a.test, b.test', 'a.test,', ',a.test', 'a_b.test', '[192.0.2.1]', 'a.test b.test'])
    assert.equal(atrnArgument(bad), null, bad);
});

test('domainsOfUser: the HoldDomains whose users include the AUTH user, in any case', () => {
  const config = testConfig({
    holdDomains: [
      { domain: 'a.test', users: ['Office'] },
      { domain: 'b.test', users: ['other', 'office'] },
      { domain: 'c.test', users: ['other'] },
    ],
  });
  assert.deepEqual(domainsOfUser(config, 'office'), ['a.test', 'b.test']);
  assert.deepEqual(domainsOfUser(config, 'nobody'), []);
});

test('authMethodsFor: PLAIN and LOGIN inside TLS or with InsecureAuth; CRAM-MD5 per AuthCramMD5 with an AuthFile', () => {
  const file = { authFile: '/etc/avenger/auth-users' };
  assert.deepEqual(authMethodsFor(testConfig({}), true), []);
  assert.deepEqual(authMethodsFor(testConfig(file), false), []);
  assert.deepEqual(authMethodsFor(testConfig(file), true), ['PLAIN', 'LOGIN']);
  assert.deepEqual(authMethodsFor(testConfig({ ...file, authCramMd5: 'yes' }), false), ['CRAM-MD5']);
  assert.deepEqual(authMethodsFor(testConfig({ ...file, authCramMd5: 'yes' }), true), ['PLAIN', 'LOGIN', 'CRAM-MD5']);
  assert.deepEqual(authMethodsFor(testConfig({ ...file, authCramMd5: 'tls' }), false), []);
  assert.deepEqual(authMethodsFor(testConfig({ ...file, authCramMd5: 'tls' }), true), ['PLAIN', 'LOGIN', 'CRAM-MD5']);
  assert.deepEqual(authMethodsFor(testConfig({ ...file, insecureAuth: true, authCramMd5: 'yes' }), false), [
    'PLAIN',
    'LOGIN',
    'CRAM-MD5',
  ]);
  // DovecotAuth: PLAIN and LOGIN only
  assert.deepEqual(
    authMethodsFor(testConfig({ dovecotAuth: { kind: 'unix', path: '/run/auth' }, authCramMd5: 'yes' }), true),
    ['PLAIN', 'LOGIN'],
  );
});
