/** The embedded default delivery: no RelayHost, no Sendmail → accepted mail lands in the hold-queue Maildir. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
    const text = readFileSync(join(newDir, files[0]!), 'latin1');
    assert.ok(text.endsWith('\r\n\r\nkeep me\r\n') || text.endsWith('\n\nkeep me\r\n') || text.includes('keep me'), text);
    assert.match(text, /carol@elsewhere\.test/);
    assert.match(text, /X-Avenger: version=/);
    assert.equal(statSync(join(newDir, files[0]!)).mode & 0o077, 0, 'queue files are private');
  } finally {
    await d.stop();
  }
});
