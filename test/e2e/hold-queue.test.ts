/** The embedded default delivery: no RelayHost, no Sendmail → accepted mail lands in the hold-queue Maildir. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readHeld } from 'asmtpd/dist/relay/hold-queue.js';
import { startDaemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';

test('without RelayHost or Sendmail, accepted mail is kept in DBDir/queue (Maildir new/)', async () => {
  const d = await startDaemon({ conf: 'RelayNet 127.0.0.0/8' });
  try {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    const body = 'Subject: held\r\n\r\nkeep me\r\n';
    const r = await c.send('bob@remote.test', ['carol@elsewhere.test'], body);
    assert.match(r.last, /^250 2\.0\.0 Ok: queued as /);
    c.close();
    const newDir = join(d.dbDir, 'queue', 'new');
    const files = readdirSync(newDir);
    assert.equal(files.length, 1);
    assert.deepEqual(readdirSync(join(d.dbDir, 'queue', 'tmp')), [], 'nothing left in tmp/');
    const path = join(newDir, files[0]!);
    const env = await readHeld(path);
    assert.equal(env.from, 'bob@remote.test');
    assert.deepEqual(env.to, ['carol@elsewhere.test']);
    assert.equal(env.queueId, r.last.split(' ').at(-1));
    const message = readFileSync(path).subarray(env.headerOffset).toString('latin1');
    assert.match(message, /^Received-SPF: none [^]*?\r\nReceived: from client\.test /);
    assert.match(message, /\r\nX-Avenger: version=[0-9.]+; receiver=mx\.example\.test;/);
    assert.ok(message.endsWith('\r\n' + body), 'the message follows the added fields byte for byte');
    assert.equal(statSync(join(newDir, files[0]!)).mode & 0o077, 0, 'queue files are private');
  } finally {
    await d.stop();
  }
});
