/**
 * Mail Avenger's body-test idiom, ``bodytest CHECK `escape "$RECIPIENT"` ``, through the real
 * daemon (issue 17): the line is taken verbatim from examples/dot-avenger/README.md and installed
 * as a user's rcpt and rcpt+default, with the shipped bcc-check. A message with the recipient in
 * To: is accepted and delivered; a blind copy is refused (554 5.7.1); the body test got the
 * address exactly as the rcpt script's shell made it (argv in the bodytest.done log). A hostile
 * extension keeps the backslashes escape gave it (asmtpd never evaluates the arguments again):
 * refused, nothing runs. And what the bug looked like: when the command in the backquotes cannot
 * run, the argument is lost — no longer silently, the script's stderr is in rcpt.decision.
 * Needs root (test accounts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const EXAMPLES = new URL('../../../examples/dot-avenger/', import.meta.url).pathname;
const README = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');
/** The idiom exactly as the README shows it. */
const IDIOM = /^bodytest .*`escape "\$RECIPIENT"`$/m.exec(README)?.[0];

let u: TestUser, av: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  assert.ok(IDIOM, 'README.md shows the idiom');
  u = createUser('bcesc');
  av = createUser('bcescav');
  writeScript(u, 'rcpt', IDIOM);
  writeScript(u, 'rcpt+default', IDIOM);
  writeScript(u, 'bcc-check', readFileSync(join(EXAMPLES, 'blind-copies', 'bcc-check'), 'utf8'));
  // what happened before escape existed: the command in the backquotes cannot run
  writeScript(u, 'rcpt+broken', 'bodytest $HOME/.avenger/bcc-check `no-such-escape "$RECIPIENT"`');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-bcesc-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u) + passwdLine(av));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain b.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${av.name}`,
      'AvengerTimeout 10s',
      `RelayHost 127.0.0.1:${sink.port}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  for (const x of [u, av]) if (x) removeUser(x);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

let serial = 0;
async function send(rcpt: string, to: string): Promise<{ rcpt: string; data: string | null; id: string }> {
  const id = `<bcesc-${process.pid}-${++serial}@client.example>`;
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.example>')).code, 250);
    const r = (await c.cmd(`RCPT TO:<${rcpt}>`)).last;
    if (!r.startsWith('250 ')) return { rcpt: r, data: null, id };
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: sender@remote.example\r\nTo: ${to}\r\nSubject: t\r\nMessage-ID: ${id}\r\n\r\nHello.\r\n.\r\n`);
    return { rcpt: r, data: (await c.reply(30_000)).last, id };
  } finally {
    c.close();
  }
}

const delivered = (id: string): boolean => sink.messages.some((m) => m.data.toString('latin1').includes(id));
const bodyTests = () => d.logs.filter((l) => l.event === 'bodytest.done');
/** The Nth bodytest.done line (from 0), once the daemon has written it. */
const bodyTest = (n: number) => d.waitLog((l) => l.event === 'bodytest.done' && bodyTests().indexOf(l) === n);

test(
  'the README line: recipient in To: → accepted and delivered; a blind copy → 554, not delivered',
  { skip },
  async () => {
    const me = `${u.name}@b.example`;
    const first = bodyTests().length;
    const ok = await send(me, `Someone <someone@else.example>, Me <${me}>`);
    assert.equal(ok.rcpt, '250 2.1.5 recipient ok');
    assert.match(ok.data!, /^250 2\.0\.0 /);
    assert.ok(delivered(ok.id));
    const blind = await send(me, 'list@else.example');
    assert.equal(blind.data, `554 5.7.1 blind carbon copy refused: <${me}> is not in To: or Cc:`);
    assert.equal(delivered(blind.id), false);
    // the body test got the address as one argument, exactly as the rcpt script's shell made it
    const runs = [await bodyTest(first), await bodyTest(first + 1)];
    for (const l of runs) assert.deepEqual(l.argv, [`${u.home}/.avenger/bcc-check`, me]);
    assert.deepEqual(
      runs.map((l) => l.verdict),
      ['accept', 'refuse'],
    );
  },
);

test(
  'a hostile extension keeps the backslashes escape gave it: in no header, refused; nothing runs',
  { skip },
  async () => {
    const n = bodyTests().length;
    const hostile = `${u.name}+\`touch\${IFS}pwned\`$(touch\${IFS}pwned2)@b.example`;
    const r = await send(hostile, hostile);
    assert.equal(r.rcpt, '250 2.1.5 recipient ok');
    assert.match(r.data!, /^554 5\.7\.1 blind carbon copy refused: /);
    const l = await bodyTest(n);
    const escaped = `${u.name}+\\\`touch\\$\\{IFS\\}pwned\\\`\\$\\(touch\\$\\{IFS\\}pwned2\\)@b.example`;
    assert.deepEqual(l.argv, [`${u.home}/.avenger/bcc-check`, escaped]);
    assert.equal(existsSync(join(u.home, 'pwned')), false);
    assert.equal(existsSync(join(u.home, 'pwned2')), false);
    assert.equal(delivered(r.id), false);
  },
);

test('a command in the backquotes that cannot run loses the argument, and the log says why', { skip }, async () => {
  const n = bodyTests().length;
  const r = await send(`${u.name}+broken@b.example`, `${u.name}+broken@b.example`);
  assert.equal(r.rcpt, '250 2.1.5 recipient ok');
  // bcc-check without an address exits 64: a local error, never an accept
  assert.equal(r.data, '451 4.3.0 local error in body test, try again later');
  const decision = await d.waitLog((l) => l.event === 'rcpt.decision' && l.to === `${u.name}+broken@b.example`);
  const scripts = decision.scripts as Array<{ stderr?: string }>;
  assert.match(scripts[0]?.stderr ?? '', /no-such-escape: not found/);
  const bt = await bodyTest(n);
  assert.deepEqual(bt.argv, [`${u.home}/.avenger/bcc-check`]);
});
