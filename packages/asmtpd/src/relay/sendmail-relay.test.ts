import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nullLogger } from '../log/logger.js';
import { createSendmailRelay, sendmailArgv } from './sendmail-relay.js';
import { makeTempDir, writeMessage } from '../testing/relay.js';
import { detailOf } from './relay-replies.js';
import type { DeliveryResult } from './types.js';

const log = nullLogger();

/** A fake sendmail: records its argv (NUL-separated) and stdin in dir, then runs `tail`. */
async function fakeSendmail(dir: string, tail: string): Promise<string> {
  const path = join(dir, 'sendmail');
  await writeFile(
    path,
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > '${dir}/argv'\ncat > '${dir}/stdin'\n${tail}\n`,
  );
  await chmod(path, 0o755);
  return path;
}

async function recordedArgv(dir: string): Promise<string[]> {
  return (await readFile(join(dir, 'argv'), 'utf8')).split('\0').slice(0, -1);
}

function replyOf(r: DeliveryResult): string {
  return r.kind === 'rejected' || r.kind === 'deferred'
    ? `${r.kind} ${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`
    : r.kind;
}

test('Sendmail: exit 0 → accepted; argv verbatim (hostile addresses, no shell); stdin = headerPrefix + spool', async () => {
  const dir = await makeTempDir('sendmail');
  const cmd = await fakeSendmail(dir, 'exit 0');
  const relay = createSendmailRelay({ argvTemplate: [cmd, '-oi', '-f', '%s', '--'], timeoutMs: 5000 });
  const hostile = ['$(id)@x', '`id`@x', 'a;touch /tmp/pwned@x', '"sp ace"@x', '-oQ/tmp@x'];
  const msg = await writeMessage(dir, { body: 'Subject: x\r\n\r\n.dot\r\n', from: '$(reboot)@evil', to: hostile });
  const r = await relay.deliver(msg, log);
  assert.equal(r.kind, 'accepted', replyOf(r));
  assert.deepEqual(await recordedArgv(dir), ['-oi', '-f', '$(reboot)@evil', '--', ...hostile]);
  assert.ok(
    (await readFile(join(dir, 'stdin'))).equals(Buffer.concat([msg.headerPrefix, await readFile(msg.spoolPath)])),
  );
  assert.equal(relay.describe(), `sendmail ${cmd}`);
});

test('Sendmail: the null sender is passed as "<>"; %s inside a word; a "-" recipient needs "--" in the template', async () => {
  assert.deepEqual(sendmailArgv(['/x', '-f%s', '-oi'], '', ['a@b']), ['/x', '-f<>', '-oi', 'a@b']);
  assert.deepEqual(sendmailArgv(['/x', '-f', '%s'], '$&@x', ['a@b']), ['/x', '-f', '$&@x', 'a@b']);
  const dir = await makeTempDir('sendmail-null');
  const cmd = await fakeSendmail(dir, 'exit 0');
  const relay = createSendmailRelay({ argvTemplate: [cmd, '-f', '%s'], timeoutMs: 5000 });
  assert.equal((await relay.deliver(await writeMessage(dir, { body: 'x\r\n', from: '' }), log)).kind, 'accepted');
  assert.deepEqual(await recordedArgv(dir), ['-f', '<>', 'rcpt@example.net']);
  const dashed = await relay.deliver(await writeMessage(dir, { body: 'x\r\n', to: ['-bd@x'] }), log);
  assert.equal(
    replyOf(dashed),
    'rejected 553 5.1.3 recipient address starting with "-" cannot be passed to the Sendmail command',
  );
});

test("Sendmail: exit 75 → deferred 451 4.3.0; exit 1 → rejected 554 5.3.0 with stderr's first line", async () => {
  const dir = await makeTempDir('sendmail-exit');
  const temp = await fakeSendmail(dir, 'echo "queue directory full" >&2; exit 75');
  const r75 = await createSendmailRelay({ argvTemplate: [temp], timeoutMs: 5000 }).deliver(
    await writeMessage(dir, { body: 'x\r\n' }),
    log,
  );
  assert.equal(replyOf(r75), `deferred 451 4.3.0 ${temp} temporary failure (exit 75): queue directory full`);
  const dir2 = await makeTempDir('sendmail-exit1');
  const perm = await fakeSendmail(dir2, 'printf "\\nUser unknown: rcpt@example.net\\nsecond line\\n" >&2; exit 1');
  const r1 = await createSendmailRelay({ argvTemplate: [perm], timeoutMs: 5000 }).deliver(
    await writeMessage(dir2, { body: 'x\r\n' }),
    log,
  );
  assert.equal(replyOf(r1), `rejected 554 5.3.0 ${perm} failed (exit 1): User unknown: rcpt@example.net`);
});

test('Sendmail: timeout kills it → deferred; a missing command → deferred; an unreadable spool → deferred', async () => {
  const dir = await makeTempDir('sendmail-slow');
  const slow = await fakeSendmail(dir, 'exec sleep 10');
  const started = Date.now();
  const r = await createSendmailRelay({ argvTemplate: [slow], timeoutMs: 300 }).deliver(
    await writeMessage(dir, { body: 'x\r\n' }),
    log,
  );
  // issue 14: generic text for the client, the command and the cause in the log detail
  assert.equal(replyOf(r), `deferred 451 4.3.0 local error in processing, try again later`);
  if (r.kind === 'deferred') assert.equal(detailOf(r.reply).detail, `${slow} did not finish within 300 ms`);
  assert.ok(Date.now() - started < 3000);
  const missing = await createSendmailRelay({ argvTemplate: [join(dir, 'nope')], timeoutMs: 1000 }).deliver(
    await writeMessage(dir, { body: 'x\r\n' }),
    log,
  );
  if (missing.kind === 'deferred')
    assert.equal(detailOf(missing.reply).detail, `cannot run ${join(dir, 'nope')}: ENOENT`);
  else assert.fail(replyOf(missing));
  const ok = await fakeSendmail(dir, 'exit 0');
  const msg = await writeMessage(dir, { body: 'x\r\n' });
  const noSpool = await createSendmailRelay({ argvTemplate: [ok], timeoutMs: 3000 }).deliver(
    { ...msg, spoolPath: join(dir, 'gone') },
    log,
  );
  assert.equal(replyOf(noSpool), 'deferred 451 4.3.0 local error in processing, try again later');
  if (noSpool.kind === 'deferred')
    assert.equal(detailOf(noSpool.reply).detail, 'could not read the spooled message: ENOENT');
});
