/**
 * The recipe of docs/deploy.md: asmtpd on port 25 in front of Postfix. The daemon runs the
 * recipe's own etc/deploy/asmtpd.conf, with only what a test must change put in — its port,
 * BindAddr 127.0.0.1, DBDir, EtcDir, AliasFile, the port of RelayHost and a loopback DNS server
 * (every other line is the file's, checked) — as root within the unit's CapabilityBoundingSet
 * (etc/asmtpd.service), in front of a private Postfix whose smtpd plays 127.0.0.1:10025.
 * A message arrives in Postfix's Maildir byte for byte but for the header fields asmtpd and
 * Postfix add; a recipient Postfix refuses is refused to the client at RCPT, with Postfix's reply.
 * In CI a missing Postfix is a failure (.ci/run installs it); elsewhere the tests are skipped with
 * the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';
import { RECIPE_CONF, systemdToolsUnavailable, underUnitCapabilities } from '../support/systemd-unit.js';

const unavailable = postfixUnavailableReason() ?? canCreateUsers() ?? systemdToolsUnavailable();
if (unavailable && process.env.CI)
  throw new Error(`CI needs Postfix, root and setpriv for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

/** Directive → the value a test must use; a directive the recipe lacks is added at the end. */
type Overrides = Record<string, string>;

/** The recipe with the overrides applied; every other line stays as it is. */
function recipeWith(overrides: Overrides): string {
  const left = new Map(Object.entries(overrides));
  const lines = readFileSync(RECIPE_CONF, 'utf8')
    .split('\n')
    .map((line) => {
      const name = /^([A-Za-z]+)\s/.exec(line)?.[1];
      if (name === undefined || !left.has(name)) return line;
      const value = left.get(name)!;
      left.delete(name);
      return `${name} ${value}`;
    });
  return [...lines, ...[...left].map(([name, value]) => `${name} ${value}`)].join('\n') + '\n';
}

let pf: PostfixInstance;
let d: Daemon;
let refused: TestUser;
let etc: string;
let conf: string;

before(async () => {
  if (unavailable) return;
  // an account asmtpd knows (LocalDomain example.org) whose mail Postfix refuses: what asmtpd
  // cannot know by itself, and must learn at RCPT
  refused = createUser('deploy');
  pf = await startPostfix({
    mode: 'maildir',
    mainCf: {
      smtpd_recipient_restrictions: `check_recipient_access inline:{ { ${refused.name}@example.org = REJECT mailbox disabled } }, permit_mynetworks, reject`,
    },
  });
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-deploy-etc-'));
  chmodSync(etc, 0o755);
  writeFileSync(join(etc, 'aliases'), 'abuse: root\n');
  d = await startDaemon({
    wrapper: underUnitCapabilities(),
    fullConf: (t) =>
      (conf = recipeWith({
        SMTPPort: String(t.port),
        BindAddr: '127.0.0.1',
        DBDir: t.dbDir,
        EtcDir: etc,
        AliasFile: join(etc, 'aliases'),
        RelayHost: `127.0.0.1:${pf.port}`,
        DNSServer: t.dnsServer,
      })),
  });
});
after(async () => {
  await d?.stop();
  await pf?.stop();
  if (refused) removeUser(refused);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

test('the test changes only ports, directories and the DNS server of the recipe', { skip }, () => {
  const recipe = readFileSync(RECIPE_CONF, 'utf8').split('\n');
  const ran = conf.split('\n');
  const changed = recipe.filter((l, i) => ran[i] !== l);
  assert.deepEqual(
    changed.map((l) => l.split(' ')[0]),
    ['AliasFile', 'SMTPPort', 'RelayHost', 'DBDir'],
  );
  assert.match(recipe.find((l) => l.startsWith('RelayHost '))!, /^RelayHost 127\.0\.0\.1:10025$/);
  assert.deepEqual(
    ran
      .slice(recipe.length - 1)
      .filter(Boolean)
      .map((l) => l.split(' ')[0]),
    ['BindAddr', 'EtcDir', 'DNSServer'],
  );
});

const MESSAGE =
  'From: Bob <bob@remote.test>\r\nTo: postmaster@example.org\r\nSubject: through the recipe\r\n' +
  'Message-ID: <deploy-1@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n' +
  'Content-Transfer-Encoding: 8bit\r\n\r\n' +
  'first line\r\n.a line that starts with a dot\r\n..two dots\r\n\xe9\xe8\xe0 eight-bit\r\n\r\n' +
  `  indented\t tab\r\n${'x'.repeat(990)}\r\nFrom the start of a line\r\nlast\r\n`;

test(
  "a message submitted to asmtpd arrives in Postfix's mailbox unchanged but for the added header fields",
  { skip },
  async () => {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    const r = await c.send('bob@remote.test', ['postmaster@example.org'], MESSAGE);
    c.close();
    assert.match(r.last, /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
    const files = await pf.waitForMessages(1, 20_000);
    assert.equal(files.length, 1);
    const stored = readFileSync(files[0]!).toString('latin1');
    // the header fields at the top, each with its continuation lines
    const added: string[] = [];
    let rest = stored;
    for (;;) {
      const m =
        /^(Return-Path|X-Original-To|Delivered-To|Received|Received-SPF|X-Avenger):[^\n]*\n(?:[ \t][^\n]*\n)*/.exec(
          rest,
        );
      if (!m) break;
      added.push(m[1]!);
      rest = rest.slice(m[0].length);
    }
    // Postfix's (virtual delivery, its smtpd) then ours (asmtpd, in front of it)
    assert.deepEqual(added, ['Return-Path', 'X-Original-To', 'Delivered-To', 'Received', 'Received', 'X-Avenger']);
    // Postfix keeps Maildir files with LF line ends
    assert.equal(rest, MESSAGE.replace(/\r\n/g, '\n'), 'the message itself, byte for byte');
    assert.match(stored, /\nReceived: from client\.test \(\[127\.0\.0\.1\]\)\n?\s+by mx\.example\.org \(asmtpd /);
    assert.match(stored, /\nX-Avenger: version=[0-9.]+; receiver=mx\.example\.org;/);
  },
);

test(
  'a recipient Postfix refuses is refused at RCPT with its reply; the others still go through',
  { skip },
  async () => {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    assert.match((await c.cmd('MAIL FROM:<bob@remote.test>')).last, /^250 /);
    assert.equal(
      (await c.cmd(`RCPT TO:<${refused.name}@example.org>`)).last,
      `554 5.7.1 <${refused.name}@example.org>: Recipient address rejected: mailbox disabled`,
    );
    // asmtpd's own answer for an account that does not exist, before Postfix is asked
    assert.match((await c.cmd('RCPT TO:<nosuchuser-deploy@example.org>')).last, /^550 5\.1\.1 /);
    // an alias of AliasFile (to root) is no unknown user
    assert.match((await c.cmd('RCPT TO:<abuse@example.org>')).last, /^250 2\.1\.5 /);
    c.close();
    const decision = await d.waitLog((l) => l.event === 'rcpt.decision' && l.to === `${refused.name}@example.org`);
    assert.match(String(decision.reply), /^554 5\.7\.1 /);
  },
);
