import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withAnswerMemo } from './answer-memo.js';
import type { LookupBackend } from './negative-cache.js';

/** A backend that counts its calls and answers from a table; `expiry` plays tangerine's cache. */
function fixture() {
  const calls: string[] = [];
  const expiry = new Map<string, number>();
  const answer = <T>(type: string, name: string, value: T): Promise<T> => {
    calls.push(`${type} ${name}`);
    return name.startsWith('fail')
      ? Promise.reject(Object.assign(new Error('SERVFAIL'), { code: 'ESERVFAIL' }))
      : Promise.resolve(value);
  };
  const backend: LookupBackend = {
    resolveTxt: (n) => answer('TXT', n, [['v=spf1', ' -all']]),
    resolveMx: (n) => answer('MX', n, [{ exchange: 'mx.example', priority: 10 }]),
    resolve4: (n) => answer('A', n, ['192.0.2.1']),
    resolve6: (n) => answer('AAAA', n, ['2001:db8::1']),
    resolvePtr: (n) => answer('PTR', n, ['host.example']),
  };
  return { calls, expiry, backend };
}

test('a cached answer is given again without asking, until the expiry tangerine has for it', async () => {
  let now = 1_000;
  const { calls, expiry, backend } = fixture();
  const r = withAnswerMemo(
    backend,
    (key) => expiry.get(key),
    10,
    () => now,
  );
  expiry.set('a:host.example', 31_000);
  assert.deepEqual(await r.resolve4('Host.Example'), ['192.0.2.1']);
  assert.deepEqual(await r.resolve4('host.example'), ['192.0.2.1']);
  assert.deepEqual(calls, ['A Host.Example'], 'the second lookup (any case) is answered from the memo');
  now = 31_000;
  await r.resolve4('host.example');
  assert.equal(calls.length, 2, 'asked again once the expiry has passed');
});

test('nothing is kept without a live expiry, and failures are never kept', async () => {
  const { calls, expiry, backend } = fixture();
  const r = withAnswerMemo(
    backend,
    (key) => expiry.get(key),
    10,
    () => 1_000,
  );
  await r.resolveTxt('uncached.example');
  await r.resolveTxt('uncached.example');
  expiry.set('mx:expired.example', 500);
  await r.resolveMx('expired.example');
  await r.resolveMx('expired.example');
  expiry.set('a:fail.example', 60_000);
  await assert.rejects(r.resolve4('fail.example'), { code: 'ESERVFAIL' });
  await assert.rejects(r.resolve4('fail.example'), { code: 'ESERVFAIL' });
  assert.deepEqual(calls, [
    'TXT uncached.example',
    'TXT uncached.example',
    'MX expired.example',
    'MX expired.example',
    'A fail.example',
    'A fail.example',
  ]);
});

test('types are kept apart, shared answers are frozen, and the memo is bounded', async () => {
  const { calls, expiry, backend } = fixture();
  for (const k of ['txt:x.example', 'a:x.example', 'a:1.example', 'a:2.example', 'a:3.example']) expiry.set(k, 60_000);
  const r = withAnswerMemo(
    backend,
    (key) => expiry.get(key),
    2,
    () => 1_000,
  );
  const txt = await r.resolveTxt('x.example');
  await r.resolve4('x.example');
  assert.deepEqual(calls, ['TXT x.example', 'A x.example']);
  assert.throws(() => (txt[0] as string[]).push('x'), TypeError, 'inner arrays are frozen too');
  assert.deepEqual(await r.resolveTxt('x.example'), [['v=spf1', ' -all']]);
  await r.resolve4('1.example');
  await r.resolve4('2.example');
  calls.length = 0;
  await r.resolveTxt('x.example');
  await r.resolve4('2.example');
  assert.deepEqual(calls, ['TXT x.example'], 'the oldest entries went when a third came in; the newest stayed');
});
