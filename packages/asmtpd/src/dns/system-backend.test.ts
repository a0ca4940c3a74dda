// systemBackend's further tries, with fake channels (the real c-ares behaviour against a real DNS
// server is in test/e2e/dns-timeout.test.ts): a timeout before DNSTimeout is asked again on a
// fresh channel given what is left; an answer, another error or a timeout at DNSTimeout is not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemBackend } from './system-backend.js';

const timeout = (): Error => Object.assign(new Error('queryA ETIMEOUT x'), { code: 'ETIMEOUT' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Channels whose resolve4 does what `plan` says, in order of creation; records each channel's timeout. */
function fakes(plan: Array<() => Promise<string[]>>) {
  const made: number[] = [];
  const make = (timeoutMs: number) => {
    const step = plan[made.length] ?? (() => Promise.reject(new Error('unexpected channel')));
    made.push(timeoutMs);
    const no = () => Promise.reject(new Error('not used'));
    return { resolve4: step, resolve6: no, resolveTxt: no, resolveMx: no, resolvePtr: no } as never;
  };
  return { make, made };
}

test('an early timeout is asked again on a fresh channel with the time that is left', async () => {
  const f = fakes([
    async () => {
      await sleep(50);
      throw timeout();
    },
    async () => ['192.0.2.1'],
  ]);
  const b = systemBackend({ servers: [], timeoutMs: 1000 }, f.make);
  assert.deepEqual(await b.resolve4('x.test'), ['192.0.2.1']);
  assert.equal(f.made.length, 2);
  assert.equal(f.made[0], 1000);
  assert.ok(f.made[1]! <= 950 && f.made[1]! >= 800, `second channel got ${f.made[1]} ms`);
});

test('no second try for an answer, a negative answer, another failure, or a timeout at DNSTimeout', async () => {
  const nx = Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  const servfail = Object.assign(new Error('ESERVFAIL'), { code: 'ESERVFAIL' });
  for (const [what, step, want] of [
    ['answer', async () => ['192.0.2.9'], ['192.0.2.9']],
    ['NXDOMAIN', () => Promise.reject(nx), 'ENOTFOUND'],
    ['SERVFAIL', () => Promise.reject(servfail), 'ESERVFAIL'],
    [
      'a timeout with under 100 ms left',
      async () => {
        await sleep(160);
        throw timeout();
      },
      'ETIMEOUT',
    ],
  ] as const) {
    const f = fakes([step as () => Promise<string[]>]);
    const b = systemBackend({ servers: [], timeoutMs: 250 }, f.make);
    if (Array.isArray(want)) assert.deepEqual(await b.resolve4('x.test'), want, what);
    else await assert.rejects(b.resolve4('x.test'), (e: { code?: string }) => e.code === want, what);
    assert.equal(f.made.length, 1, `${what}: one channel only`);
  }
});

test('timeouts are asked again until DNSTimeout; another error on a later try is the answer', async () => {
  const early = async () => {
    await sleep(120);
    throw timeout();
  };
  const f = fakes([early, early, early, early, early, early, early, early, early, early]);
  const b = systemBackend({ servers: [], timeoutMs: 500 }, f.make);
  await assert.rejects(b.resolve4('x.test'), (e: { code?: string }) => e.code === 'ETIMEOUT');
  assert.ok(f.made.length >= 3 && f.made.length <= 5, `${f.made.length} channels for 500 ms in tries of 120 ms`);
  assert.ok(
    f.made.every((ms, i) => i === 0 || ms < f.made[i - 1]!),
    `each gets what is left: ${f.made.join(', ')}`,
  );
  const nx = Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  const g = fakes([early, () => Promise.reject(nx)]);
  await assert.rejects(
    systemBackend({ servers: [], timeoutMs: 1000 }, g.make).resolve4('x.test'),
    (e: { code?: string }) => e.code === 'ENOTFOUND',
  );
  assert.equal(g.made.length, 2);
});
