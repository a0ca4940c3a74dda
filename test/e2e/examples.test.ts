/**
 * The shipped examples (examples/dot-avenger, avenger.md §5) end to end: each file is installed
 * verbatim — scripts into temporary users' ~/.avenger (owned by the user, 0755), data files 0644,
 * `unknown` into the daemon's EtcDir (owned by root) — and the real daemon is driven over SMTP with
 * a real downstream. Needs root (useradd, switching users); in CI that is a failure if missing,
 * elsewhere those tests are skipped with the reason. The static checks (POSIX sh, no eval, every
 * file documented) need nothing and always run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient, type SmtpReply } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const EXAMPLES = new URL('../../../examples/dot-avenger/', import.meta.url).pathname;

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let snd: TestUser, bcc: TestUser, ext: TestUser, av: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;
const MARK = join(tmpdir(), `asmtpd-examples-pwned-${process.pid}`);

/** Copy examples/dot-avenger/EXAMPLE/FILE verbatim into the user's ~/.avenger/AS (scripts 0755, data 0644). */
function install(u: TestUser, example: string, file: string, as = file): void {
  const src = join(EXAMPLES, example, file);
  const body = readFileSync(src, 'utf8');
  if (body.startsWith('#!')) {
    // writeScript keeps a body that starts with "#!" as it is
    writeScript(u, as, body, 0o755);
  } else {
    const dest = join(u.home, '.avenger', as);
    copyFileSync(src, dest);
    chownSync(dest, u.uid, u.gid);
    chmodSync(dest, 0o644);
  }
  assert.equal(readFileSync(join(u.home, '.avenger', as), 'utf8'), body);
}

before(async () => {
  if (unavailable) return;
  snd = createUser('exsnd');
  bcc = createUser('exbcc');
  ext = createUser('exext');
  av = createUser('exaveng');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-examples-etc-'));
  chmodSync(etc, 0o755);
  sink = await startSink();

  // scripts first: writeScript creates ~/.avenger (owned by the user, 0755)
  install(snd, 'sender-patterns', 'rcpt');
  install(snd, 'sender-patterns', 'senders.reject');
  install(snd, 'sender-patterns', 'senders.defer');

  install(bcc, 'blind-copies', 'rcpt');
  install(bcc, 'blind-copies', 'rcpt', 'rcpt+default');
  install(bcc, 'blind-copies', 'bcc-check');

  install(ext, 'extensions', 'rcpt+lists');
  install(ext, 'extensions', 'rcpt+default');
  install(ext, 'extensions', 'retired');

  // EtcDir/unknown: installed by the administrator, owned by root
  const unknown = join(etc, 'unknown');
  copyFileSync(join(EXAMPLES, 'etc', 'unknown'), unknown);
  chownSync(unknown, 0, 0);
  chmodSync(unknown, 0o755);

  // PasswdFile replaces the system database: only the test accounts exist for the daemon
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, [snd, bcc, ext, av].map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example shop.example',
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
  for (const u of [snd, bcc, ext, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
  rmSync(MARK, { force: true });
});

/** MAIL FROM:<from> (empty: <>) and one RCPT; the RCPT reply line. */
async function rcpt(to: string, from: string): Promise<string> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    const m = await c.cmd(`MAIL FROM:<${from}>`);
    assert.equal(m.code, 250, m.last);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

/** A whole transaction; the RCPT replies and the DATA reply (null when no RCPT was accepted). */
async function transaction(
  from: string,
  to: string[],
  message: string,
): Promise<{ rcpts: string[]; data: string | null }> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    const rcpts: string[] = [];
    for (const t of to) rcpts.push((await c.cmd(`RCPT TO:<${t}>`)).last);
    if (!rcpts.some((r) => r.startsWith('250 '))) return { rcpts, data: null };
    const go: SmtpReply = await c.cmd('DATA');
    assert.equal(go.code, 354, go.last);
    c.write(message.replace(/(^|\r\n)\./g, '$1..'));
    c.write('.\r\n');
    return { rcpts, data: (await c.reply(30_000)).last };
  } finally {
    c.close();
  }
}

let serial = 0;
/** A message with the given header lines (CRLF added) and a unique Message-ID to find it in the sink. */
function message(headers: string[], body = 'Hello.'): { text: string; id: string } {
  const id = `<example-${process.pid}-${++serial}@client.example>`;
  const text = [
    'From: Sender <sender@remote.example>',
    ...headers,
    'Subject: test',
    `Message-ID: ${id}`,
    '',
    body,
    '',
  ].join('\r\n');
  return { text, id };
}

function delivered(id: string): boolean {
  return sink.messages.some((m) => m.data.toString('latin1').includes(`Message-ID: ${id}`));
}

const QUEUED = /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/;

// --- static: every shipped script is POSIX sh, never evals, and every file is documented ---------

test('the examples are POSIX sh scripts (dash -n), executable, without eval, and each file is in the README', () => {
  const readme = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');
  const files: string[] = [];
  for (const dir of readdirSync(EXAMPLES)) {
    if (!statSync(join(EXAMPLES, dir)).isDirectory()) continue;
    for (const f of readdirSync(join(EXAMPLES, dir))) files.push(join(dir, f));
  }
  assert.ok(files.length >= 9, files.join(' '));
  for (const f of files) {
    const path = join(EXAMPLES, f);
    const text = readFileSync(path, 'utf8');
    assert.ok(readme.includes(f), `README.md describes ${f}`);
    if (!text.startsWith('#!')) continue;
    assert.ok(text.startsWith('#!/bin/sh\n'), `${f}: #!/bin/sh`);
    assert.ok((statSync(path).mode & 0o111) === 0o111, `${f} is executable`);
    assert.ok((statSync(path).mode & 0o022) === 0, `${f} is not group/world-writable`);
    execFileSync('dash', ['-n', path]);
    // comments may mention the word; code must not use it
    const code = text
      .split('\n')
      .filter((l) => !/^\s*#/.test(l))
      .join('\n');
    assert.doesNotMatch(code, /\beval\b/, `${f} never evals`);
  }
});

// --- 1. sender patterns ----------------------------------------------------------------------------

test(
  'sender-patterns/rcpt: rejects and defers by sender pattern, from the script and from the files',
  { skip },
  async () => {
    const to = `${snd.name}@a.example`;
    const spam = '550 5.7.1 mail from spam.example is not accepted here';
    assert.equal(await rcpt(to, 'x@spam.example'), spam);
    assert.equal(await rcpt(to, 'Promo@Mail.SPAM.Example'), spam, 'subdomain, any case');
    assert.equal(await rcpt(to, 'x@nospam.example'), '250 2.1.5 recipient ok', '*@spam.example is not a suffix match');
    assert.equal(
      await rcpt(to, 'billing@partner.example'),
      '451 4.7.1 mail from partner.example is on hold, try again later',
    );
    // ~/.avenger/senders.reject
    const listed = '550 5.7.1 mail from this sender is not accepted here';
    assert.equal(await rcpt(to, 'win@casino.example'), listed);
    assert.equal(await rcpt(to, 'win@eu.CASINO.example'), listed);
    assert.equal(await rcpt(to, 'promo-spring@shop.example'), listed);
    assert.equal(await rcpt(to, 'spring-promo@shop.example'), '250 2.1.5 recipient ok');
    // ~/.avenger/senders.defer
    assert.equal(
      await rcpt(to, 'someone@unsure.example'),
      '451 4.7.1 mail from this sender is delayed here, try again later',
    );
    // no pattern matches: provisional accept; the null sender is never matched
    assert.equal(await rcpt(to, 'friend@remote.example'), '250 2.1.5 recipient ok');
    assert.equal(await rcpt(to, ''), '250 2.1.5 recipient ok');
  },
);

test(
  'sender-patterns/rcpt: a sender is data — glob characters and shell syntax in it change nothing',
  { skip },
  async () => {
    const to = `${snd.name}@a.example`;
    assert.equal(await rcpt(to, '*@nowhere.example'), '250 2.1.5 recipient ok');
    assert.equal(
      await rcpt(to, `\`touch\${IFS}${MARK}\`@spam.example`),
      '550 5.7.1 mail from spam.example is not accepted here',
    );
    assert.equal(
      await rcpt(to, `"$(touch ${MARK})"@casino.example`),
      '550 5.7.1 mail from this sender is not accepted here',
    );
    assert.equal(await rcpt(to, `$(touch\${IFS}${MARK})@remote.example`), '250 2.1.5 recipient ok');
    assert.ok(!existsSync(MARK), 'nothing was executed');
  },
);

// --- 2. blind carbon copies ------------------------------------------------------------------------

test(
  'blind-copies: accepted and delivered when the recipient is in To: or Cc: (folded, any case, display names)',
  { skip },
  async () => {
    const to = `${bcc.name}@a.example`;
    for (const headers of [
      [`To: ${to}`],
      [`To: "Someone" <other@remote.example>,`, `\t"B. Cc" <${to.toUpperCase()}>`],
      ['To: other@remote.example', 'CC:', `  ${bcc.name}@A.Example (me),`, '  third@remote.example'],
    ]) {
      const m = message(headers);
      const r = await transaction('sender@remote.example', [to], m.text);
      assert.deepEqual(r.rcpts, ['250 2.1.5 recipient ok']);
      assert.match(r.data ?? '', QUEUED, headers.join(' | '));
      assert.ok(delivered(m.id), `delivered: ${headers.join(' | ')}`);
    }
    const ran = await d.waitLog((l) => l.event === 'bodytest.done' && l.user === bcc.name && l.verdict === 'accept');
    assert.deepEqual(ran.argv, [join(bcc.home, '.avenger', 'bcc-check'), to]);
  },
);

test(
  'blind-copies: refused with 554 5.7.1 and never delivered when the recipient is not in To:/Cc:',
  { skip },
  async () => {
    const to = `${bcc.name}@a.example`;
    const refused = `554 5.7.1 blind carbon copy refused: <${to}> is not in To: or Cc:`;
    for (const [why, headers, body] of [
      // asmtpd's own Received: names the recipient ("for <…>"): it must not count, nor other fields, nor the body
      [
        'only elsewhere',
        ['To: other@remote.example', `X-Original-To: ${to}`, `Resent-To: ${to}`, `Bcc: ${to}`],
        `To: ${to}\r\nSee ${to}.`,
      ],
      ['look-alikes', [`To: x${to}`, `Cc: ${to}.evil.example, "${bcc.name}" <${bcc.name}@b.example>`], 'Hello.'],
      ['undisclosed recipients', ['To: undisclosed-recipients:;'], 'Hello.'],
      ['no To: or Cc: at all', [], 'Hello.'],
    ] as Array<[string, string[], string]>) {
      const m = message(headers, body);
      const r = await transaction('sender@remote.example', [to], m.text);
      assert.deepEqual(r.rcpts, ['250 2.1.5 recipient ok'], why);
      assert.equal(r.data, refused, why);
      assert.ok(!delivered(m.id), `not delivered: ${why}`);
    }
    const log = await d.waitLog((l) => l.event === 'bodytest.done' && l.user === bcc.name && l.verdict === 'refuse');
    assert.equal(log.reply, refused);
  },
);

test(
  'blind-copies: an extension address (rcpt+default) passes with itself or the plain address in To:',
  { skip },
  async () => {
    const plain = `${bcc.name}@a.example`;
    const news = `${bcc.name}+news@a.example`;
    for (const shown of [news, `${bcc.name}+NEWS@a.example`, plain]) {
      const m = message([`To: ${shown}`]);
      const r = await transaction('list@remote.example', [news], m.text);
      assert.match(r.data ?? '', QUEUED, `To: ${shown}`);
      assert.ok(delivered(m.id), `To: ${shown}`);
    }
    const m = message([`To: ${bcc.name}+other@a.example`]);
    const r = await transaction('list@remote.example', [news], m.text);
    assert.equal(r.data, `554 5.7.1 blind carbon copy refused: <${news}> is not in To: or Cc:`);
    assert.ok(!delivered(m.id));
    const argv = await d.waitLog((l) => l.event === 'bodytest.done' && Array.isArray(l.argv) && l.argv[1] === news);
    assert.deepEqual(argv.argv, [join(bcc.home, '.avenger', 'bcc-check'), news, plain]);
  },
);

test(
  'blind-copies: two addresses of the user in one message are split: the second gets 452 4.5.3',
  { skip },
  async () => {
    const plain = `${bcc.name}@a.example`;
    const news = `${bcc.name}+news@a.example`;
    const m = message([`To: ${plain}`]);
    const r = await transaction('sender@remote.example', [plain, news], m.text);
    assert.deepEqual(r.rcpts, ['250 2.1.5 recipient ok', '452 4.5.3 send to this recipient separately']);
    assert.match(r.data ?? '', QUEUED);
    const got = sink.messages.find((x) => x.data.toString('latin1').includes(`Message-ID: ${m.id}`));
    assert.deepEqual(got?.to, [plain]);
  },
);

// --- 3. per-extension rules ------------------------------------------------------------------------

test(
  'extensions/rcpt+lists: you+lists@ takes mail only from mailing-list senders (and bounces)',
  { skip },
  async () => {
    const to = `${ext.name}+lists@a.example`;
    for (const sender of [
      'announce-bounces@mail.example.org',
      `announce-bounces+${ext.name}=a.example@mail.example.org`,
      'devel-request@example.org',
      'owner-team@example.net',
      `bounce-debian-devel=${ext.name}=a.example@lists.debian.org`,
      'tools-return-42-ext=a.example@example.com',
      'group+bncBD123@googlegroups.com',
      'Announce-Bounces@Mail.Example.Org',
      '',
    ]) {
      assert.equal(await rcpt(to, sender), '250 2.1.5 recipient ok', sender);
    }
    for (const sender of ['harvester@spam.example', 'bounces@example.org', 'lists@example.org']) {
      assert.equal(await rcpt(to, sender), '550 5.7.1 this address only receives mailing-list mail', sender);
    }
  },
);

test(
  'extensions/rcpt+default: every other extension works until it is listed in ~/.avenger/retired',
  { skip },
  async () => {
    const from = 'shop@remote.example';
    assert.equal(await rcpt(`${ext.name}+newshop@a.example`, from), '250 2.1.5 recipient ok');
    assert.equal(await rcpt(`${ext.name}+oldshopping@a.example`, from), '250 2.1.5 recipient ok', 'whole lines only');
    assert.equal(
      await rcpt(`${ext.name}@a.example`, from),
      '250 2.1.5 recipient ok',
      'no rcpt file: provisional accept',
    );
    const gone = '550 5.1.1 this address is no longer in use';
    for (const e of ['oldshop', 'OldShop', 'oldshop+anything', 'forum2019']) {
      assert.equal(await rcpt(`${ext.name}+${e}@a.example`, from), gone, e);
    }
    const log = await d.waitLog((l) => l.event === 'rcpt.decision' && l.to === `${ext.name}+OldShop@a.example`);
    const scripts = log.scripts as Array<{ script: string; uid: number }>;
    assert.equal(scripts[0]?.script, join(ext.home, '.avenger', 'rcpt+default'));
    assert.equal(scripts[0]?.uid, ext.uid);
  },
);

// --- 4. EtcDir/unknown -------------------------------------------------------------------------------

test(
  'etc/unknown: role addresses are accepted (and delivered), everything else 550 5.1.1; runs as AvengerUser',
  { skip },
  async () => {
    const from = 'customer@remote.example';
    for (const to of [
      'sales-emea@a.example',
      'Support-1234@a.example',
      'support-12+urgent@a.example',
      'info@a.example',
      'orders-77@shop.example',
    ]) {
      assert.equal(await rcpt(to, from), '250 2.1.5 recipient ok', to);
    }
    const nobody = '550 5.1.1 no such user or role address here';
    for (const to of ['nobody-here@a.example', 'sales-@a.example', 'orders-77@a.example', 'xsales-emea@a.example']) {
      assert.equal(await rcpt(to, from), nobody, to);
    }
    const log = await d.waitLog((l) => l.event === 'rcpt.decision' && l.to === 'sales-emea@a.example');
    assert.equal(log.route, 'unknown');
    const scripts = log.scripts as Array<{ script: string; uid: number }>;
    assert.equal(scripts[0]?.script, join(etc, 'unknown'));
    assert.equal(scripts[0]?.uid, av.uid);
    // accepted role mail goes downstream like any other
    const m = message(['To: sales-emea@a.example']);
    const r = await transaction(from, ['sales-emea@a.example'], m.text);
    assert.match(r.data ?? '', QUEUED);
    const got = sink.messages.find((x) => x.data.toString('latin1').includes(`Message-ID: ${m.id}`));
    assert.deepEqual(got?.to, ['sales-emea@a.example']);
  },
);
