import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecision, SHELL_PRELUDE } from './prelude.js';

const rec = (...fields: string[]) => Buffer.from(`${fields.length}\0${fields.join('\0')}\0`);

test('parseDecision reads each verb', () => {
  assert.deepEqual(parseDecision(rec('accept')), { decision: { verb: 'accept', args: [] }, error: null });
  assert.deepEqual(parseDecision(rec('reject', '550 5.7.1 no')).decision, { verb: 'reject', args: ['550 5.7.1 no'] });
  assert.deepEqual(parseDecision(rec('defer', '')).decision, { verb: 'defer', args: [''] });
  assert.deepEqual(parseDecision(rec('redirect', 'bob+grey@x')).decision, { verb: 'redirect', args: ['bob+grey@x'] });
  assert.deepEqual(parseDecision(rec('bodytest', 'spamc', '-c', 'a b')).decision, { verb: 'bodytest', args: ['spamc', '-c', 'a b'] });
});

test('parseDecision: first record wins, empty is no decision', () => {
  assert.deepEqual(parseDecision(Buffer.concat([rec('reject', 'x'), rec('accept')])).decision, { verb: 'reject', args: ['x'] });
  assert.deepEqual(parseDecision(Buffer.alloc(0)), { decision: null, error: null });
});

test('parseDecision reports garbage instead of guessing', () => {
  const bad = [Buffer.from('accept\n'), Buffer.from('2\0accept'), rec('shrug'), rec('redirect'), rec('redirect', 'a', 'b'),
    rec('accept', 'a', 'b'), rec('bodytest', ''), Buffer.from('0\0'), Buffer.from('x\0accept\0')];
  for (const bytes of bad) {
    const r = parseDecision(bytes);
    assert.equal(r.decision, null, JSON.stringify(bytes.toString()));
    assert.notEqual(r.error, null);
  }
});

test('the prelude is constant text that sources /dev/fd/4 last', () => {
  assert.match(SHELL_PRELUDE, /\n\. \/dev\/fd\/4\n$/);
  for (const fn of ['accept', 'reject', 'defer', 'redirect', 'bodytest', 'errcheck']) assert.match(SHELL_PRELUDE, new RegExp(`^${fn}\\(\\)`, 'm'));
});
