import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRelay } from './index.js';
import { readHeld } from './hold-queue.js';
import {
  captureLogger,
  closedPort,
  makeTempDir,
  smtpError,
  startDownstream,
  testConfig,
  writeMessage,
} from '../testing/relay.js';
import { nullLogger } from '../log/logger.js';

test('createRelay: no RelayHost, no Sendmail → the hold queue; accepted with held path; queue.held + relay.done', async () => {
  const dir = await makeTempDir('embedded');
  const queue = join(dir, 'queue');
  const relay = createRelay(testConfig({ holdQueue: queue }), nullLogger());
  assert.equal(relay.describe(), `hold queue ${queue}`);
  const log = captureLogger();
  const msg = await writeMessage(dir, { body: 'Subject: x\r\n\r\nsecret body\r\n' });
  const r = await relay.deliver(msg, log);
  assert.equal(r.kind, 'accepted');
  if (r.kind !== 'accepted') return;
  assert.ok(r.held?.startsWith(join(queue, 'new')));
  assert.deepEqual(
    log.lines.map((l) => l.event),
    ['queue.held', 'relay.done'],
  );
  assert.equal(log.lines[1]!.fields['held'], r.held);
  assert.equal(log.lines[1]!.fields['id'], msg.id);
  assert.ok(!JSON.stringify(log.lines).includes('secret body'), 'message content never logged');
  await relay.close();
});

test('createRelay: HoldOnFailure yes and the downstream down → held (with the reason) and accepted', async () => {
  const dir = await makeTempDir('hold-on-failure');
  const port = await closedPort();
  const queue = join(dir, 'queue');
  const relay = createRelay(
    testConfig({ relayHost: { kind: 'smtp', host: '127.0.0.1', port }, holdOnFailure: true, holdQueue: queue }),
    nullLogger(),
  );
  assert.equal(relay.describe(), `smtp 127.0.0.1:${port} (pooled), hold on failure in ${queue}`);
  const log = captureLogger();
  const msg = await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', to: ['a@example.net', 'b@example.net'] });
  const r = await relay.deliver(msg, log);
  assert.equal(r.kind, 'accepted');
  if (r.kind !== 'accepted' || !r.held) return assert.fail('not held');
  const env = await readHeld(r.held);
  assert.deepEqual(env.to, ['a@example.net', 'b@example.net']);
  // issue 14: the held reason keeps the detail the client does not see
  assert.equal(
    env.heldReason,
    `451 4.4.1 mail system temporarily unavailable, try again later (downstream 127.0.0.1:${port} unavailable: ECONNREFUSED)`,
  );
  assert.ok(
    (await readFile(r.held))
      .subarray(env.headerOffset)
      .equals(Buffer.concat([msg.headerPrefix, await readFile(msg.spoolPath)])),
  );
  assert.deepEqual(
    log.lines.filter((l) => l.event !== 'queue.held').map((l) => l.event),
    ['relay.done'],
  );
  await relay.close();
});

test('createRelay: HoldOnFailure passes a permanent refusal through; relay.failed logged once with the reply', async () => {
  const d = await startDownstream({ onRcpt: () => smtpError(550, '5.1.1 no such user') });
  const dir = await makeTempDir('hold-perm');
  const relay = createRelay(
    testConfig({
      relayHost: { kind: 'smtp', host: '127.0.0.1', port: d.port },
      holdOnFailure: true,
      holdQueue: join(dir, 'queue'),
    }),
    nullLogger(),
  );
  const log = captureLogger();
  try {
    const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
    assert.equal(r.kind, 'rejected');
    assert.deepEqual(
      log.lines.map((l) => [l.event, l.fields['reply']]),
      [['relay.failed', '550 5.1.1 no such user']],
    );
  } finally {
    await relay.close();
    await d.close();
  }
});

test('createRelay: HoldOnFailure with LMTP holds only the deferred recipients', async () => {
  const d = await startDownstream({ lmtp: true, onData: () => ['ok', smtpError(452, '4.2.2 quota')] });
  const dir = await makeTempDir('hold-lmtp');
  const relay = createRelay(
    testConfig({
      relayHost: { kind: 'lmtp', host: '127.0.0.1', port: d.port },
      holdOnFailure: true,
      holdQueue: join(dir, 'queue'),
    }),
    nullLogger(),
  );
  try {
    const r = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', to: ['ok@example.net', 'full@example.net'] }),
      captureLogger(),
    );
    assert.equal(r.kind, 'accepted');
    if (r.kind !== 'accepted' || !r.held) return assert.fail('not held');
    assert.deepEqual((await readHeld(r.held)).to, ['full@example.net']);
  } finally {
    await relay.close();
    await d.close();
  }
});

test('createRelay: Sendmail when set; SMTP relay.done carries the downstream response and id', async () => {
  const d = await startDownstream({ onData: () => 'Ok: queued as ABC123' });
  const dir = await makeTempDir('relay-done');
  const relay = createRelay(testConfig({ relayHost: { kind: 'smtp', host: '127.0.0.1', port: d.port } }), nullLogger());
  const log = captureLogger();
  try {
    const msg = await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' });
    assert.equal((await relay.deliver(msg, log)).kind, 'accepted');
    assert.equal(log.lines.length, 1);
    assert.deepEqual(
      [
        log.lines[0]!.event,
        log.lines[0]!.fields['id'],
        log.lines[0]!.fields['downstreamId'],
        log.lines[0]!.fields['relay'],
      ],
      ['relay.done', msg.id, 'ABC123', relay.describe()],
    );
  } finally {
    await relay.close();
    await d.close();
  }
  assert.equal(
    createRelay(testConfig({ sendmail: ['/usr/sbin/sendmail', '-f', '%s'] }), nullLogger()).describe(),
    'sendmail /usr/sbin/sendmail',
  );
});
