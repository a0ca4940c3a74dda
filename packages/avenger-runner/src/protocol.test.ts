import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_LIMITS,
  isValidCandidateName,
  isValidSpoolName,
  LineSplitter,
  validateRequest,
  validateSettings,
} from './protocol.js';

const good = {
  kind: 'rcpt',
  scope: 'user',
  account: 'bob',
  candidates: ['rcpt', 'rcpt+a+default'],
  env: { SENDER: 'a@b', MAIL_ERROR: '' },
  timeoutMs: 1000,
};
const settings = {
  etcDir: '/etc/avenger',
  avengerUser: 'avenger',
  passwdFile: null,
  spoolDir: '/var/spool/avenger/spool',
  daemonUid: 101,
  deniedUids: [102],
  envNames: ['SENDER'],
  fixedEnv: { ASMTPD_NODE: '/usr/bin/node' },
  toolsDir: null,
  limits: DEFAULT_LIMITS,
};

test('validateRequest accepts well-formed rcpt and bodytest requests', () => {
  assert.equal(validateRequest(good).ok, true);
  assert.equal(
    validateRequest({ kind: 'rcpt', scope: 'system', candidates: ['unknown'], env: {}, timeoutMs: 5 }).ok,
    true,
  );
  assert.equal(
    validateRequest({ kind: 'bodytest', token: 'a'.repeat(32), spool: '0123ABC.full', timeoutMs: 1000, id: 3 }).ok,
    true,
  );
});

test('validateRequest rejects malformed requests, and every field it does not know, with a reason', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['kind', { kind: 'command' }],
    ['scope', { scope: 'root' }],
    ['account', { account: '' }],
    ['account', { account: 7 }],
    ['unknown field "uid"', { uid: 0 }],
    ['unknown field "gid"', { gid: 0 }],
    ['unknown field "groups"', { groups: [0] }],
    ['unknown field "dir"', { dir: '/root' }],
    ['unknown field "home"', { home: '/root' }],
    ['unknown field "stdinPath"', { stdinPath: '/etc/shadow' }],
    ['env name', { env: { 'A=B': 'x' } }],
    ['env name', { env: { '1X': 'x' } }],
    ['env value', { env: { A: 3 } }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['candidates', { candidates: 'rcpt' }],
    ['candidates', { candidates: [] }],
    ['rcpt file names', { candidates: ['local'] }],
    ['rcpt file names', { candidates: ['rcpt/../x'] }],
    ['id', { id: -1 }],
  ];
  for (const [reason, patch] of cases) {
    const r = validateRequest({ ...good, ...patch });
    assert.equal(r.ok, false, JSON.stringify(patch));
    if (!r.ok) assert.match(r.reason, new RegExp(reason), JSON.stringify(patch));
  }
  assert.equal(
    validateRequest({ kind: 'rcpt', scope: 'system', account: 'bob', candidates: ['unknown'], env: {}, timeoutMs: 5 })
      .ok,
    false,
  );
  assert.equal(
    validateRequest({ kind: 'rcpt', scope: 'system', candidates: ['rcpt'], env: {}, timeoutMs: 5 }).ok,
    false,
  );
  assert.equal(validateRequest({ kind: 'bodytest', token: 'xyz', spool: 'a', timeoutMs: 5 }).ok, false);
  assert.equal(validateRequest({ kind: 'bodytest', token: 'a'.repeat(32), spool: '../a', timeoutMs: 5 }).ok, false);
  assert.equal(
    validateRequest({ kind: 'bodytest', token: 'a'.repeat(32), spool: 'a', timeoutMs: 5, argv: ['sh'] }).ok,
    false,
  );
  assert.equal(validateRequest(null).ok, false);
});

test('a NUL in an environment value is not a reason to refuse (the runner cleans it)', () => {
  assert.equal(validateRequest({ ...good, env: { CLIENT_PTR: 'evil\0.example' } }).ok, true);
});

test('validateSettings is strict too', () => {
  assert.equal(validateSettings(settings).ok, true);
  for (const patch of [
    { etcDir: 'etc' },
    { daemonUid: -1 },
    { deniedUids: ['x'] },
    { envNames: ['A B'] },
    { limits: { ...DEFAULT_LIMITS, openFiles: 1.5 } },
    { extra: 1 },
  ]) {
    assert.equal(validateSettings({ ...settings, ...patch }).ok, false, JSON.stringify(patch));
  }
});

test('isValidCandidateName refuses slashes, leading dots, NUL and empty names', () => {
  for (const name of ['rcpt', 'rcpt+a+default', 'rcpt+x.y', 'rcpt+-'])
    assert.equal(isValidCandidateName(name), true, name);
  for (const name of ['', '.rcpt', '..', 'rcpt+a/b', '../rcpt', 'rc\0pt'])
    assert.equal(isValidCandidateName(name), false, name);
});

test('isValidSpoolName takes plain file names only', () => {
  for (const name of ['ABC123', 'ABC123.full', 'x_y-z']) assert.equal(isValidSpoolName(name), true, name);
  for (const name of ['', '.x', '..', 'a/b', '/etc/shadow', 'a\0b', 'a b'])
    assert.equal(isValidSpoolName(name), false, name);
});

test('LineSplitter keeps partial lines across chunks', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('{"a":1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(s.push(':2}\n\n'), ['{"b":2}', '']);
  assert.throws(() => new LineSplitter(4).push('123456'));
});
