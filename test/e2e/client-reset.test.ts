/**
 * A client that resets its connection in the middle of a transaction (after MAIL FROM) is
 * routine on port 25: the daemon logs session.reset at info level with the client's address and
 * the socket's code, not session.error, ends the session and goes on serving.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';

let d: Daemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

test('a reset after MAIL FROM is logged as session.reset (info), and the daemon goes on', async () => {
  const c = await SmtpClient.connect(d.port);
  assert.equal((await c.greeting()).code, 220);
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<s@remote.example>')).code, 250);
  c.socket.resetAndDestroy();
  const reset = await d.waitLog((l) => l.event === 'session.reset');
  assert.equal(reset.level, 'info');
  assert.equal(reset.ip, '127.0.0.1');
  assert.equal(reset.code, 'ECONNRESET');
  await d.waitLog((l) => l.event === 'session.end' && l.ip === '127.0.0.1');
  assert.deepEqual(
    d.logs.filter((l) => l.event === 'session.error'),
    [],
  );

  const next = await SmtpClient.connect(d.port);
  assert.equal((await next.greeting()).code, 220);
  assert.equal((await next.cmd('EHLO client.test')).code, 250);
  next.close();
});
