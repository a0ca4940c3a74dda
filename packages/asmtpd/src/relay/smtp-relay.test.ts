import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { nullLogger } from '../log/logger.js';
import { createSmtpRelay } from './smtp-relay.js';
import { detailOf } from './relay-replies.js';
import {
  captureLogger,
  closedPort,
  makeTempDir,
  smtpError,
  startDownstream,
  writeMessage,
  type FakeDownstream,
} from '../testing/relay.js';
import type { DeliveryResult, Relay } from './types.js';

const log = nullLogger();

function relayTo(d: { port: number }, timeoutMs = 3000, maxConnections = 5): Relay {
  return createSmtpRelay({
    target: { kind: 'smtp', host: '127.0.0.1', port: d.port },
    clientName: 'relay.test',
    timeoutMs,
    pool: { maxConnections },
  });
}

async function withDownstream(
  behaviour: Parameters<typeof startDownstream>[0],
  fn: (d: FakeDownstream, relay: Relay, dir: string) => Promise<void>,
  timeoutMs?: number,
): Promise<void> {
  const d = await startDownstream(behaviour);
  const relay = relayTo(d, timeoutMs);
  const dir = await makeTempDir('smtp');
  try {
    await fn(d, relay, dir);
  } finally {
    await relay.close();
    await d.close();
  }
}

function replyOf(r: DeliveryResult): string {
  return r.kind === 'rejected' || r.kind === 'deferred'
    ? `${r.kind} ${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`
    : r.kind;
}

const TRICKY_BODY = Buffer.concat([
  Buffer.from('Subject: dots\r\nFrom: <a@example.org>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n', 'latin1'),
  Buffer.from([0x38, 0x62, 0x69, 0x74, 0x3a, 0x20, 0xe9, 0xff, 0x80, 0x0d, 0x0a]), // "8bit: " + high bytes
  Buffer.from('. \r\nlast line\r\n', 'latin1'),
]);

test('SMTP: headerPrefix + spool arrive byte-identical (dots, 8-bit), BODY=8BITMIME, exact envelope', async () => {
  await withDownstream({}, async (d, relay, dir) => {
    const msg = await writeMessage(dir, { body: TRICKY_BODY, eightBit: true, to: ['a@example.net', 'b@example.net'] });
    const r = await relay.deliver(msg, log);
    assert.equal(r.kind, 'accepted', replyOf(r));
    assert.equal(d.received.length, 1);
    const got = d.received[0]!;
    assert.ok(got.data.equals(Buffer.concat([msg.headerPrefix, await readFile(msg.spoolPath)])), 'bytes differ');
    assert.equal(got.from, 'sender@example.org');
    assert.deepEqual(got.to, ['a@example.net', 'b@example.net']);
    assert.equal(got.mailArgs['BODY'], '8BITMIME');
    assert.equal(got.mailArgs['SIZE'], String(msg.headerPrefix.length + msg.size));
    assert.match(relay.describe(), /^smtp 127\.0\.0\.1:\d+ \(pooled\)$/);
  });
});

test('SMTP: null sender goes out as MAIL FROM:<>; downstream id parsed from "queued as"', async () => {
  await withDownstream({ onData: () => 'Ok: queued as 4Xh2Abc' }, async (d, relay, dir) => {
    const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: bounce\r\n\r\nhi\r\n', from: '' }), log);
    assert.equal(r.kind, 'accepted');
    assert.equal(d.received[0]!.from, '');
    if (r.kind === 'accepted') {
      assert.equal(r.downstreamId, '4Xh2Abc');
      assert.match(r.response, /^250 Ok: queued as 4Xh2Abc/);
    }
  });
});

test('SMTP: pooled — sequential deliveries reuse one connection; a burst opens at most maxConnections', async () => {
  const d = await startDownstream({});
  const relay = relayTo(d, 3000, 3);
  const dir = await makeTempDir('pool');
  try {
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await relay.deliver(await writeMessage(dir, { body: `Subject: ${i}\r\n\r\nx\r\n` }), log)).kind,
        'accepted',
      );
    assert.equal(d.connections, 1);
    const msgs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => writeMessage(dir, { body: `Subject: burst ${i}\r\n\r\nx\r\n` })),
    );
    const results = await Promise.all(msgs.map((m) => relay.deliver(m, log)));
    assert.deepEqual(
      results.map((r) => r.kind),
      Array(8).fill('accepted'),
    );
    assert.ok(d.connections <= 3, `opened ${d.connections} connections`);
    assert.equal(d.received.length, 11);
  } finally {
    await relay.close();
    await d.close();
  }
});

test('SMTP: 550 at RCPT → rejected with the exact code, enhanced status and text', async () => {
  await withDownstream(
    { onRcpt: () => smtpError(550, '5.1.1 <nobody@example.net>: Recipient address rejected') },
    async (d, relay, dir) => {
      const r = await relay.deliver(
        await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', to: ['nobody@example.net'] }),
        log,
      );
      assert.equal(replyOf(r), 'rejected 550 5.1.1 <nobody@example.net>: Recipient address rejected');
      assert.equal(d.received.length, 0);
    },
  );
});

test('SMTP: 554 after the data → rejected as is; a reply without enhanced status gets one of its class', async () => {
  let answer = smtpError(554, '5.7.1 spam detected');
  await withDownstream({ onData: () => answer }, async (_d, relay, dir) => {
    const r1 = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
    assert.equal(replyOf(r1), 'rejected 554 5.7.1 spam detected');
    answer = smtpError(552, 'too much');
    const r2 = await relay.deliver(await writeMessage(dir, { body: 'Subject: y\r\n\r\ny\r\n' }), log);
    assert.equal(replyOf(r2), 'rejected 552 5.0.0 too much');
  });
});

test('SMTP: bigger than the SIZE the downstream announced → rejected 552 5.3.4 before any data', async () => {
  await withDownstream({ sizeLimitBytes: 1000 }, async (d, relay, dir) => {
    const r = await relay.deliver(await writeMessage(dir, { body: Buffer.alloc(2000, 'x') }), log);
    assert.equal(r.kind, 'rejected', replyOf(r));
    if (r.kind === 'rejected') assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '552 5.3.4');
    assert.equal(
      (await relay.deliver(await writeMessage(dir, { body: 'Subject: small\r\n\r\nx\r\n' }), log)).kind,
      'accepted',
    );
    assert.equal(d.connections, 1);
  });
});

test('SMTP: 451 from the downstream → deferred with its reply', async () => {
  await withDownstream({ onRcpt: () => smtpError(451, '4.3.2 try again later') }, async (_d, relay, dir) => {
    const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
    assert.equal(replyOf(r), 'deferred 451 4.3.2 try again later');
  });
});

// issue 14: was "nothing delivered, the most severe refusal" (which made the client bounce or
// retry the deliverable recipients); now the accepted ones get it and each refusal is reported
test('SMTP: some recipients refused at delivery → delivered to the others, per-recipient results; all refused → the first 4xx', async () => {
  const refuse: Record<string, Error> = {
    'perm@example.net': smtpError(550, '5.1.1 perm: no such user'),
    'temp@example.net': smtpError(450, '4.2.1 temp: mailbox busy'),
  };
  await withDownstream({ onRcpt: (a) => refuse[a] ?? null }, async (d, relay, dir) => {
    const mixed = await relay.deliver(
      await writeMessage(dir, {
        body: 'Subject: x\r\n\r\nx\r\n',
        to: ['ok@example.net', 'temp@example.net', 'perm@example.net'],
      }),
      log,
    );
    assert.equal(mixed.kind, 'per-recipient');
    if (mixed.kind === 'per-recipient') {
      assert.deepEqual(
        mixed.results.map((r) =>
          r.kind === 'accepted' ? `${r.to} accepted` : `${r.to} ${r.kind} ${r.reply.code} ${r.reply.enhanced}`,
        ),
        ['ok@example.net accepted', 'temp@example.net deferred 450 4.2.1', 'perm@example.net rejected 550 5.1.1'],
      );
    }
    assert.equal(d.received.length, 1);
    assert.deepEqual(d.received[0]!.to, ['ok@example.net']);
    const noneTaken = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: y\r\n\r\ny\r\n', to: ['perm@example.net', 'temp@example.net'] }),
      log,
    );
    assert.equal(
      replyOf(noneTaken),
      'deferred 450 4.2.1 temp: mailbox busy',
      'nothing delivered: the 4xx, so a retry reaches the deferred one',
    );
    const fine = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: z\r\n\r\nz\r\n', to: ['ok@example.net'] }),
      log,
    );
    assert.equal(fine.kind, 'accepted', 'the session stays usable');
    assert.equal(d.received.length, 2);
  });
});

// issue 14: the client's text is generic, the cause (address, errno) is the log's detail only
test('SMTP: downstream not listening → deferred 451 4.4.1, generic text, the cause in the detail', async () => {
  const port = await closedPort();
  const relay = relayTo({ port });
  const dir = await makeTempDir('down');
  const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
  assert.equal(replyOf(r), 'deferred 451 4.4.1 mail system temporarily unavailable, try again later');
  if (r.kind === 'deferred')
    assert.deepEqual(detailOf(r.reply), { detail: `downstream 127.0.0.1:${port} unavailable: ECONNREFUSED` });
  await relay.close();
});

test('SMTP: downstream destroys the socket in the middle of DATA → deferred 4.4.2, never accepted', async () => {
  await withDownstream({ destroyMidData: true }, async (d, relay, dir) => {
    const big = Buffer.alloc(2 * 1024 * 1024, 'abcdefghij\r\n');
    const r = await relay.deliver(
      await writeMessage(dir, { body: Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), big]) }),
      log,
    );
    assert.equal(r.kind, 'deferred', replyOf(r));
    if (r.kind === 'deferred') assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '451 4.4.2');
    assert.equal(d.received.length, 0);
  });
});

test('SMTP: a downstream that never answers → deferred 451 4.4.1 after relayTimeoutMs', async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  const port = (silent.address() as AddressInfo).port;
  const relay = relayTo({ port }, 300);
  const dir = await makeTempDir('silent');
  const started = Date.now();
  const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
  assert.equal(replyOf(r), 'deferred 451 4.4.1 mail system temporarily unavailable, try again later');
  if (r.kind === 'deferred')
    assert.deepEqual(detailOf(r.reply), { detail: `no answer from downstream 127.0.0.1:${port} within 300 ms` });
  assert.ok(Date.now() - started < 2000);
  await relay.close();
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

test('SMTP: a downstream that never answers the end of data → deferred 4.4.1, not accepted', async () => {
  await withDownstream(
    { onData: () => 'hang' },
    async (d, relay, dir) => {
      const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
      assert.equal(r.kind, 'deferred');
      if (r.kind === 'deferred') assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '451 4.4.1');
      assert.equal(d.received.length, 0);
    },
    400,
  );
});

test('SMTP: stale pooled connection (closed by the downstream while idle, or just as it is reused) → still delivered', async () => {
  // idle timeout at the downstream: it says 421 and closes; the next message opens a new session
  await withDownstream({ socketTimeoutMs: 150 }, async (d, relay, dir) => {
    assert.equal(
      (await relay.deliver(await writeMessage(dir, { body: 'Subject: 1\r\n\r\n1\r\n' }), log)).kind,
      'accepted',
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: 2\r\n\r\n2\r\n' }), log);
    assert.equal(r.kind, 'accepted', replyOf(r));
    assert.equal(d.connections, 2);
  });
  // the race: the downstream drops the idle session in the same tick as we reuse it
  await withDownstream({}, async (d, relay, dir) => {
    assert.equal(
      (await relay.deliver(await writeMessage(dir, { body: 'Subject: 1\r\n\r\n1\r\n' }), log)).kind,
      'accepted',
    );
    const next = await writeMessage(dir, { body: 'Subject: 2\r\n\r\n2\r\n' });
    for (const c of d.server.connections) c._socket.destroy();
    const seen = captureLogger();
    const r = await relay.deliver(next, seen);
    assert.equal(r.kind, 'accepted', replyOf(r));
    assert.ok(
      seen.lines.some((l) => l.fields['stale'] === true),
      'the stale session was retried on a fresh one',
    );
    assert.equal(d.received.length, 2);
    assert.equal(d.connections, 2);
  });
});

test('SMTP: SMTPUTF8 passed when the client used it; refused 550 5.6.7 when needed and the downstream lacks it', async () => {
  const utf8Body = 'Subject: café ☕\r\n\r\nbody\r\n';
  await withDownstream({}, async (d, relay, dir) => {
    const r = await relay.deliver(await writeMessage(dir, { body: utf8Body, smtputf8: true, eightBit: true }), log);
    assert.equal(r.kind, 'accepted');
    assert.equal(d.received[0]!.mailArgs['SMTPUTF8'], true);
    const plain = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' }), log);
    assert.equal(plain.kind, 'accepted');
    assert.equal(d.received[1]!.mailArgs['SMTPUTF8'], undefined);
  });
  await withDownstream({ hideSMTPUTF8: true }, async (d, relay, dir) => {
    const r = await relay.deliver(await writeMessage(dir, { body: utf8Body, smtputf8: true }), log);
    assert.equal(r.kind, 'rejected');
    if (r.kind === 'rejected') assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '550 5.6.7');
    // the client said SMTPUTF8 but nothing in the envelope or header is non-ASCII: no need, delivered
    const ascii = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: x\r\n\r\nnon-ASCII body \xe9 is fine\r\n', smtputf8: true }),
      log,
    );
    assert.equal(ascii.kind, 'accepted', replyOf(ascii));
    const utf8Rcpt = await relay.deliver(
      await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', smtputf8: true, to: ['josé@example.net'] }),
      log,
    );
    assert.equal(utf8Rcpt.kind, 'rejected');
    assert.equal(d.received.length, 1);
  });
});

test('SMTP: unreadable spool → deferred 451 4.3.0, connection not reused mid-DATA', async () => {
  await withDownstream({}, async (d, relay, dir) => {
    const msg = await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n' });
    const r = await relay.deliver({ ...msg, spoolPath: `${dir}/missing` }, log);
    assert.equal(r.kind, 'deferred');
    if (r.kind === 'deferred') assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '451 4.3.0');
    assert.equal((await relay.deliver(msg, log)).kind, 'accepted');
    assert.equal(d.received.length, 1);
  });
});
