/** Dictionary-attack blocking over a real (in-memory) state database, with a clock of its own. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStateDb } from '../store/state-db.js';
import { captureLogger, testConfig } from '../testing/relay.js';
import { createBlocklist } from './blocklist.js';

function setup(overrides: Parameters<typeof testConfig>[0] = {}) {
  const db = openStateDb(':memory:');
  let t = 1_000_000;
  const log = captureLogger();
  const bl = createBlocklist({
    db: () => db,
    record: (ip, address, net) => db.unknownRecipients.record(ip, address, t, net),
    log,
    now: () => t,
  });
  bl.start();
  const config = testConfig({ blockTimeMs: 60_000, blockTimeMaxMs: 600_000, ...overrides });
  const guard = bl.guard(config);
  return {
    db,
    log,
    guard,
    bl,
    advance: (ms: number) => (t += ms),
    harvest(ip: string, n: number, exempt = false) {
      for (let i = 0; i < n; i++) guard.unknown(ip, `x${i}@example.test`, exempt);
    },
  };
}

test('the 10th unknown recipient within the window blocks the address for BlockTime', (t) => {
  const s = setup();
  t.after(() => s.bl.close());
  s.harvest('192.0.2.1', 9);
  assert.equal(s.guard.blocked('192.0.2.1'), null, '9 refusals: not yet');
  s.harvest('192.0.2.1', 1);
  assert.equal(s.guard.blocked('192.0.2.1')?.net, '192.0.2.1/32');
  assert.equal(s.guard.blocked('192.0.2.2'), null, 'its neighbour is not blocked (BlockNetmask 32)');
  const added = s.log.lines.filter((l) => l.event === 'block.added');
  assert.equal(added.length, 1);
  assert.equal(added[0]!.fields.unknown, 10);
  assert.equal(added[0]!.fields.duration_ms, 60_000);
  s.advance(60_000);
  assert.equal(s.guard.blocked('192.0.2.1'), null, 'the block ended by itself');
});

test('refusals spread beyond the window do not block; two typos never do', (t) => {
  const s = setup();
  t.after(() => s.bl.close());
  for (let i = 0; i < 20; i++) {
    s.guard.unknown('192.0.2.3', `typo${i}@example.test`, false);
    s.advance(70_000); // 10 minutes hold at most 9 of them
  }
  assert.equal(s.guard.blocked('192.0.2.3'), null);
  s.harvest('192.0.2.4', 2);
  assert.equal(s.guard.blocked('192.0.2.4'), null);
});

test('a repeat offence doubles, up to BlockTimeMax; refusals paid for by a block do not count again', (t) => {
  const s = setup();
  t.after(() => s.bl.close());
  const durations: unknown[] = [];
  for (let round = 0; round < 5; round++) {
    s.harvest('192.0.2.5', 1);
    assert.equal(s.guard.blocked('192.0.2.5'), null, `round ${round}: one refusal after the block is not enough`);
    s.harvest('192.0.2.5', 9);
    const until = s.guard.blocked('192.0.2.5')!.until;
    s.advance(until - s.advance(0));
  }
  for (const l of s.log.lines) if (l.event === 'block.added') durations.push(l.fields.duration_ms);
  assert.deepEqual(durations, [60_000, 120_000, 240_000, 480_000, 600_000]);
});

test('BlockNetmask 24 aggregates a /24; exempt clients are recorded but never blocked', (t) => {
  const s = setup({ blockNetmask: { v4: 24, v6: 64 } });
  t.after(() => s.bl.close());
  for (let i = 0; i < 10; i++) s.guard.unknown(`198.51.100.${10 + i}`, `x${i}@example.test`, false);
  assert.equal(s.guard.blocked('198.51.100.250')?.net, '198.51.100.0/24');
  s.harvest('203.0.113.9', 30, true);
  assert.equal(s.guard.blocked('203.0.113.9'), null);
  assert.equal(s.db.unknownRecipients.count('203.0.113.9', 0), 30);
});

test('an add or del by another process reaches the in-memory set through the generation', async (t) => {
  const s = setup();
  t.after(() => s.bl.close());
  s.db.blocks.put({ net: '192.0.2.99/32', until: 10_000_000, offences: 1, since: 0, reason: 'admin' });
  assert.equal(s.guard.blocked('192.0.2.99'), null, 'not yet re-read');
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(s.guard.blocked('192.0.2.99')?.net, '192.0.2.99/32');
  s.db.blocks.delete('192.0.2.99/32');
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(s.guard.blocked('192.0.2.99'), null);
  assert.equal(s.log.lines.filter((l) => l.event === 'block.reload').length, 2);
});

test('client statistics are batched into the database', (t) => {
  const s = setup();
  s.guard.seen('192.0.2.7', 'connection');
  s.guard.seen('192.0.2.7', 'connection');
  s.guard.seen('192.0.2.7', 'message');
  s.harvest('192.0.2.7', 3);
  s.bl.close();
  t.after(() => s.db.close());
  const row = s.db.clientStats.get('192.0.2.7');
  assert.deepEqual(
    { c: row?.connections, m: row?.messages, u: row?.unknownRcpts, b: row?.blocked },
    { c: 2, m: 1, u: 3, b: 0 },
  );
});
