import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidCandidateName, LineSplitter, validateRequest } from './protocol.js';

const good = {
  kind: 'rcpt', uid: 1000, gid: 1000, groups: [1000, 27], user: 'bob', home: '/home/bob',
  dir: '/home/bob/.avenger', candidates: ['rcpt'], env: { SENDER: 'a@b', MAIL_ERROR: '' }, timeoutMs: 1000,
};

test('validateRequest accepts well-formed rcpt and command requests', () => {
  assert.equal(validateRequest(good).ok, true);
  const { dir: _d, candidates: _c, ...rest } = good;
  assert.equal(validateRequest({ ...rest, kind: 'command', argv: ['spamc', '-c'], stdinPath: '/var/spool/x' }).ok, true);
});

test('validateRequest rejects malformed requests with a reason', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['kind', { kind: 'shell' }],
    ['uid', { uid: -1 }],
    ['uid', { uid: 1.5 }],
    ['gid', { gid: '0' }],
    ['groups', { groups: [1, 'x'] }],
    ['home', { home: 'relative' }],
    ['env name', { env: { 'A=B': 'x' } }],
    ['env name', { env: { '1X': 'x' } }],
    ['env value', { env: { A: 'nul\0byte' } }],
    ['env value', { env: { A: 3 } }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['dir', { dir: 'x/.avenger' }],
    ['candidates', { candidates: 'rcpt' }],
    ['stdinPath', { stdinPath: 'msg' }],
  ];
  for (const [reason, patch] of cases) {
    const r = validateRequest({ ...good, ...patch });
    assert.equal(r.ok, false, JSON.stringify(patch));
    if (!r.ok) assert.match(r.reason, new RegExp(reason), JSON.stringify(patch));
  }
  assert.equal(validateRequest({ ...good, kind: 'command', argv: [] }).ok, false);
  assert.equal(validateRequest(null).ok, false);
});

test('isValidCandidateName refuses slashes, leading dots, NUL and empty names', () => {
  for (const name of ['rcpt', 'rcpt+a+default', 'rcpt+x.y', 'rcpt+-']) assert.equal(isValidCandidateName(name), true, name);
  for (const name of ['', '.rcpt', '..', 'rcpt+a/b', '../rcpt', 'rc\0pt']) assert.equal(isValidCandidateName(name), false, name);
});

test('LineSplitter keeps partial lines across chunks', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('{"a":1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(s.push(':2}\n\n'), ['{"b":2}', '']);
  assert.throws(() => new LineSplitter(4).push('123456'));
});
