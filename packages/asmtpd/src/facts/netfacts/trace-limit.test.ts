import { test } from 'node:test';
import assert from 'node:assert/strict';
import { limitTraces } from './trace-limit.js';

test('limitTraces: at most max in flight, the rest refused at once; a finished trace frees its place', async () => {
  const pending: Array<() => void> = [];
  let started = 0;
  const slow = (ip: string): Promise<string> => {
    started++;
    return new Promise((resolve) => pending.push(() => resolve(ip)));
  };
  const limited = limitTraces(slow, 3);
  const first = [1, 2, 3].map((i) => limited(`127.0.${i}.1`, 30, 1000));
  await assert.rejects(limited('127.0.4.1', 30, 1000), /3 route traces already running/);
  assert.equal(started, 3, 'the fourth never started');
  pending.shift()!();
  assert.equal(await first[0], '127.0.1.1');
  const again = limited('127.0.5.1', 30, 1000);
  assert.equal(started, 4);
  for (const done of pending.splice(0)) done();
  assert.deepEqual(await Promise.all([...first.slice(1), again]), ['127.0.2.1', '127.0.3.1', '127.0.5.1']);
  // a failed trace frees its place too
  const failing = limitTraces(async () => Promise.reject(new Error('unreachable')), 1);
  await assert.rejects(failing('127.0.6.1', 30, 1000), /unreachable/);
  await assert.rejects(failing('127.0.7.1', 30, 1000), /unreachable/);
});
