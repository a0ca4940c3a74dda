/**
 * Body tests end to end (avenger.md §3–§4): a recipient's script asks for `bodytest CMD…`; after
 * DATA the command runs as that user with the message (Received and X-Avenger already added) on
 * stdin, and its exit code decides: 0 accept, 100 reject 554 5.7.1, 111 defer 451 4.7.1, 99 accept
 * and discard, anything else or a timeout 451 4.3.0. Recipients of different body tests cannot share
 * a transaction (452 4.5.3); identical tests run once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, chmodSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let alice: TestUser, av: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;

// the body test: records what it saw, prints a reason, exits with $1 (or sleeps for "sleep")
const BT = `#!/bin/sh
echo run >> "$HOME/bt-runs"
cat > "$HOME/bt-input"
echo "$RECIPIENT" > "$HOME/bt-recipient"
[ "$1" = sleep ] && exec sleep 30
echo "verdict $1 from body test"
echo "second line"
exit "$1"
`;

before(async () => {
  if (unavailable) return;
  alice = createUser('btalice');
  av = createUser('btaveng');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-bt-etc-'));
  chmodSync(etc, 0o755);
  sink = await startSink();
  writeScript(alice, 'bt', BT);
  for (const code of ['0', '100', '111', '99', '3', 'sleep'])
    writeScript(alice, `rcpt+bt${code}`, `bodytest "$HOME/.avenger/bt" ${code}`);
  writeScript(alice, 'rcpt+same', 'bodytest "$HOME/.avenger/bt" 0');
  writeScript(alice, 'rcpt', 'accept');
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(alice) + passwdLine(av));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      `LocalDomain b.example`,
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${av.name}`,
      'AvengerTimeout 2s',
      `RelayHost 127.0.0.1:${sink.port}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  for (const u of [alice, av]) if (u) removeUser(u);
  rmSync(etc, { recursive: true, force: true });
});

const MESSAGE = 'From: x@remote.example\r\nSubject: body test\r\n\r\nhello body\r\n';

async function sendTo(rcpts: string[]): Promise<{ rcptReplies: string[]; data: string }> {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  await c.cmd('EHLO client.example');
  await c.cmd('MAIL FROM:<x@remote.example>');
  const rcptReplies: string[] = [];
  for (const r of rcpts) rcptReplies.push((await c.cmd(`RCPT TO:<${r}>`)).last);
  let data = '(no DATA)';
  if (rcptReplies.some((r) => r.startsWith('250'))) {
    await c.cmd('DATA');
    c.write(MESSAGE + '.\r\n');
    data = (await c.reply(15_000)).last;
  }
  c.close();
  return { rcptReplies, data };
}

const A = (ext: string): string => `${alice.name}+${ext}@b.example`;

test('exit 0: delivered; the test saw the message with Received and X-Avenger on a file stdin', { skip }, async () => {
  const before = sink.messages.length;
  const r = await sendTo([A('bt0')]);
  assert.deepEqual(r.rcptReplies, ['250 2.1.5 recipient ok']);
  assert.match(r.data, /^250 2\.0\.0 Ok: queued as /);
  assert.equal(sink.messages.length, before + 1);
  const seen = readFileSync(join(alice.home, 'bt-input'), 'latin1');
  assert.match(seen, /^Received-SPF: none [^]*?\r\nReceived: from client\.example /);
  assert.match(seen, /\r\nX-Avenger: version=/);
  assert.ok(seen.endsWith('\r\n' + MESSAGE));
  assert.equal(readFileSync(join(alice.home, 'bt-recipient'), 'utf8').trim(), A('bt0'));
});

test(
  'exit 100 → 554 5.7.1 with the first line of output; exit 111 → 451 4.7.1; nothing delivered',
  { skip },
  async () => {
    const before = sink.messages.length;
    assert.equal((await sendTo([A('bt100')])).data, '554 5.7.1 verdict 100 from body test');
    assert.equal((await sendTo([A('bt111')])).data, '451 4.7.1 verdict 111 from body test');
    assert.equal(sink.messages.length, before);
  },
);

test('exit 99 → 250 and the message is discarded (logged, not delivered)', { skip }, async () => {
  const before = sink.messages.length;
  const r = await sendTo([A('bt99')]);
  assert.match(r.data, /^250 2\.0\.0 /);
  assert.equal(sink.messages.length, before);
  const l = await d.waitLog((x) => x.event === 'data.discarded');
  assert.deepEqual(l.rcpts, [A('bt99')]);
});

test('another exit code or a timeout → 451 4.3.0', { skip }, async () => {
  assert.equal((await sendTo([A('bt3')])).data, '451 4.3.0 local error in body test, try again later');
  const started = Date.now();
  assert.equal((await sendTo([A('btsleep')])).data, '451 4.3.0 body test timed out, try again later');
  assert.ok(Date.now() - started < 8000);
});

test(
  'recipients of different body tests: the second gets 452 4.5.3; no body test is a group of its own',
  { skip },
  async () => {
    const r = await sendTo([A('bt0'), A('bt100'), alice.name + '@b.example']);
    assert.deepEqual(r.rcptReplies, [
      '250 2.1.5 recipient ok',
      '452 4.5.3 send to this recipient separately',
      '452 4.5.3 send to this recipient separately',
    ]);
    assert.match(r.data, /^250 /);
  },
);

test('identical body tests for two recipients run once', { skip }, async () => {
  rmSync(join(alice.home, 'bt-runs'), { force: true });
  const r = await sendTo([A('bt0'), A('same')]);
  assert.deepEqual(r.rcptReplies, ['250 2.1.5 recipient ok', '250 2.1.5 recipient ok']);
  assert.match(r.data, /^250 /);
  assert.equal(readFileSync(join(alice.home, 'bt-runs'), 'utf8'), 'run\n');
  assert.ok(existsSync(join(alice.home, 'bt-input')));
});
