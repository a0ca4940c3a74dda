import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { nullLogger } from '../log/logger.js';
import { createSmtpRelay } from './smtp-relay.js';
import { replyForLog } from './relay-replies.js';
import { makeTempDir, smtpError, startDownstream, writeMessage } from '../testing/relay.js';

const log = nullLogger();

test('LMTP: per-recipient replies after the data → per-recipient results (one accepted, one 550)', async () => {
  const d = await startDownstream({
    lmtp: true,
    onData: () => ['2.0.0 delivered to alice', smtpError(550, '5.2.1 bob: mailbox disabled')],
  });
  const relay = createSmtpRelay({
    target: { kind: 'lmtp', host: '127.0.0.1', port: d.port },
    clientName: 'relay.test',
    timeoutMs: 3000,
  });
  const dir = await makeTempDir('lmtp');
  try {
    const msg = await writeMessage(dir, {
      body: 'Subject: x\r\n\r\n.dot\r\n',
      to: ['alice@example.net', 'bob@example.net'],
    });
    const r = await relay.deliver(msg, log);
    assert.deepEqual(r.kind === 'per-recipient' ? r.results : r, [
      { to: 'alice@example.net', kind: 'accepted' },
      {
        to: 'bob@example.net',
        kind: 'rejected',
        reply: { code: 550, enhanced: '5.2.1', text: 'bob: mailbox disabled' },
      },
    ]);
    assert.ok(d.received[0]!.data.equals(Buffer.concat([msg.headerPrefix, await readFile(msg.spoolPath)])));
    assert.match(relay.describe(), /^lmtp 127\.0\.0\.1:\d+ \(pooled\)$/);
  } finally {
    await relay.close();
    await d.close();
  }
});

test('LMTP: a recipient refused at RCPT (4xx) is reported per recipient; all accepted → accepted', async () => {
  const d = await startDownstream({
    lmtp: true,
    onRcpt: (a) => (a.startsWith('full') ? smtpError(452, '4.2.2 full: over quota') : null),
  });
  const relay = createSmtpRelay({
    target: { kind: 'lmtp', host: '127.0.0.1', port: d.port },
    clientName: 'relay.test',
    timeoutMs: 3000,
  });
  const dir = await makeTempDir('lmtp-rcpt');
  try {
    const r = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', to: ['ok@example.net', 'full@example.net'] }),
      log,
    );
    assert.deepEqual(r.kind === 'per-recipient' ? r.results : r, [
      { to: 'ok@example.net', kind: 'accepted' },
      { to: 'full@example.net', kind: 'deferred', reply: { code: 452, enhanced: '4.2.2', text: 'full: over quota' } },
    ]);
    const all = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: y\r\n\r\ny\r\n', to: ['a@example.net', 'b@example.net'] }),
      log,
    );
    assert.equal(all.kind, 'accepted');
    assert.equal(d.connections, 1, 'LMTP sessions are pooled too');
  } finally {
    await relay.close();
    await d.close();
  }
});

test('LMTP over a unix socket (RelayHost unix:/path)', async () => {
  const dir = await makeTempDir('lmtp-unix');
  const path = join(dir, 'lmtp.sock');
  const d = await startDownstream({ lmtp: true, socketPath: path });
  const relay = createSmtpRelay({ target: { kind: 'lmtp-unix', path }, clientName: 'relay.test', timeoutMs: 3000 });
  try {
    const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', from: '' }), log);
    assert.equal(r.kind, 'accepted');
    assert.equal(d.received[0]!.from, '');
    assert.equal(relay.describe(), `lmtp unix:${path} (pooled)`);
  } finally {
    await relay.close();
    await d.close();
  }
  const gone = createSmtpRelay({
    target: { kind: 'lmtp-unix', path: join(dir, 'nobody.sock') },
    clientName: 'relay.test',
    timeoutMs: 3000,
  });
  const r = await gone.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
  // issue 14: generic text for the client, the cause in the log detail
  assert.equal(
    r.kind === 'deferred' ? replyForLog(r.reply) : r.kind,
    `451 4.4.1 mail system temporarily unavailable, try again later (downstream unix:${join(dir, 'nobody.sock')} unavailable: ENOENT)`,
  );
  await gone.close();
});
