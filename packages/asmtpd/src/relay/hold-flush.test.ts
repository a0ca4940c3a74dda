import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  captureLogger,
  makeTempDir,
  startDownstream,
  testConfig,
  writeMessage,
  type FakeDownstream,
} from '../testing/relay.js';
import { countHeldFor, deliverHeldOver, flushHeld } from './hold-flush.js';
import { readHeld, writeHeld } from './hold-queue.js';
import { readRecord, writeRecord } from './queue-store.js';

const servers: FakeDownstream[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function hold(dir: string, work: string, to: string[], body: string, now?: Date): Promise<string> {
  const msg = await writeMessage(work, { body, to });
  const w = await writeHeld(dir, msg, { hostname: 'mx.test', ...(now ? { now } : {}) });
  assert.equal(w.kind, 'held');
  return w.kind === 'held' ? w.path : '';
}

test("deliverHeldOver (ATRN): only the domain's recipients, over the given connection, byte for byte; the rest stays held", async () => {
  const dir = await makeTempDir('atrn-q');
  const work = await makeTempDir('atrn-w');
  const p1 = await hold(dir, work, ['a@site.test'], 'Subject: one\r\n\r\n1\r\n');
  const p2 = await hold(dir, work, ['b@site.test', 'c@other.test'], 'Subject: two\r\n\r\n2\r\n');
  await hold(dir, work, ['d@other.test'], 'Subject: three\r\n\r\n3\r\n');
  const expected1 = readFileSync(p1).subarray((await readHeld(p1)).headerOffset);
  const id2 = p2.slice(p2.lastIndexOf('/') + 1);
  assert.equal(await countHeldFor(dir, 'site.test'), 2);
  assert.equal(await countHeldFor(dir, 'other.test'), 2);
  assert.equal(await countHeldFor(dir, 'nobody.test'), 0);

  const peer = await startDownstream();
  servers.push(peer);
  // the peer greets first on a connection we hold, as after ATRN's 250
  const socket = connect(peer.port, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const log = captureLogger();
  const report = await deliverHeldOver(socket, {
    dir,
    domain: 'Site.Test',
    hostname: 'mx.test',
    config: testConfig({ holdQueue: dir }),
    log,
  });
  assert.deepEqual(report, { delivered: 2, deferred: 0, failed: 0, busy: 0 });
  assert.equal(peer.connections, 1, 'one connection: the given one');
  assert.deepEqual(peer.received.map((m) => m.to).sort(), [['a@site.test'], ['b@site.test']]);
  assert.ok(
    peer.received.some((m) => m.data.equals(expected1)),
    'byte for byte',
  );
  // the split message: b@ done, c@ still to go
  assert.equal(await countHeldFor(dir, 'site.test'), 0);
  assert.equal(await countHeldFor(dir, 'other.test'), 2);
  assert.deepEqual((await readRecord(dir, id2)).done, ['b@site.test']);
  assert.ok(log.lines.some((l) => l.event === 'queue.delivered' && l.fields.by === 'atrn'));
});

test('flushHeld to a target: a refused recipient gets a DSN queued and relayed along the routes, not to the target', async () => {
  const dir = await makeTempDir('flush-q');
  const work = await makeTempDir('flush-w');
  await hold(dir, work, ['bad@x.test', 'good@x.test'], 'Subject: mixed\r\n\r\nm\r\n');
  const target = await startDownstream({
    onRcpt: (a) => (a.startsWith('bad@') ? Object.assign(new Error('no such user'), { responseCode: 550 }) : null),
  });
  const relayHost = await startDownstream();
  servers.push(target, relayHost);
  const report = await flushHeld({
    dir,
    config: testConfig({ holdQueue: dir, relayHost: { kind: 'smtp', host: '127.0.0.1', port: relayHost.port } }),
    target: { host: '127.0.0.1', port: target.port },
  });
  assert.deepEqual(report, { delivered: 0, deferred: 0, failed: 1, busy: 0 });
  assert.deepEqual(
    target.received.map((m) => m.to),
    [['good@x.test']],
  );
  assert.equal(relayHost.received.length, 1, 'the DSN went to RelayHost');
  assert.deepEqual(relayHost.received[0]!.to, ['sender@example.org']);
  assert.equal(relayHost.received[0]!.from, '');
  assert.match(relayHost.received[0]!.data.toString(), /Final-Recipient: rfc822; bad@x\.test/);
  assert.equal(readdirSync(join(dir, 'failed')).length, 1);
  assert.deepEqual(readdirSync(join(dir, 'new')), []);
});

test('HoldMaxAge counts from the last requeue out of failed/ (asmtpd --release), else from the queued date', async () => {
  const dir = await makeTempDir('requeue-q');
  const work = await makeTempDir('requeue-w');
  const sixDaysAgo = new Date(Date.now() - 6 * 86_400_000);
  const released = await hold(dir, work, ['again@x.test'], 'Subject: released\r\n\r\nr\r\n', sixDaysAgo);
  await hold(dir, work, ['old@x.test'], 'Subject: old\r\n\r\no\r\n', sixDaysAgo);
  const id = released.slice(released.lastIndexOf('/') + 1);
  const f = { to: 'again@x.test', code: 451, enhanced: '4.4.7', text: 'delivery time expired' };
  await writeRecord(
    dir,
    id,
    {
      attempts: 0,
      nextRetry: Date.now(),
      done: [],
      failed: [],
      requeued: [{ at: Date.now(), attempts: 4, failed: [f] }],
    },
    { durable: false },
  );
  const target = await startDownstream();
  servers.push(target);
  const report = await flushHeld({
    dir,
    config: testConfig({ holdQueue: dir, holdMaxAgeMs: 5 * 86_400_000 }),
    target: { host: '127.0.0.1', port: target.port },
  });
  assert.deepEqual(report, { delivered: 1, deferred: 0, failed: 1, busy: 0 });
  assert.deepEqual(
    target.received.map((m) => m.to),
    [['again@x.test']],
  );
});
