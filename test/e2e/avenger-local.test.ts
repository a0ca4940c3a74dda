/**
 * avenger.local (docs/man/avenger.local.1.md), the MTA's local delivery agent, end to end:
 *   - as Postfix's mailbox_command in a private Postfix that delivers locally (local(8) runs the
 *     command with the recipient's uid and gid): a user's ~/.avenger/local runs as that user with
 *     the message on a stdin it can edit in place (edinplace) and file (deliver); local+EXT and
 *     local+default with DEFAULT; a user without ~/.avenger gets plain delivery to ~/Maildir/;
 *     the shipped recipe examples/dot-avenger/local-delivery/local, installed verbatim;
 *   - started as root (as other MTAs start their local delivery agent): the script still runs as
 *     the user; a uid-0 recipient, a system account and an unsafe local file are refused with 75
 *     (the MTA keeps the mail); an unknown user is 67; started as one user for another: 75.
 * Needs root (useradd, Postfix's master(8)).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePostfix, startPostfix, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';
import { runToolAs, TOOLS } from '../support/run-tool.js';

const EXAMPLE = new URL('../../../examples/dot-avenger/local-delivery/local', import.meta.url).pathname;
const DOMAIN = 'local.test';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let plain: TestUser, scripted: TestUser, ext: TestUser, example: TestUser, av: TestUser;
let etc: string;
let conf: string;
let pf: PostfixInstance | null = null;

before(() => {
  if (unavailable) return;
  [plain, scripted, ext, example, av] = ['alplain', 'alscript', 'alext', 'alexample', 'alav'].map(createUser) as [
    TestUser,
    TestUser,
    TestUser,
    TestUser,
    TestUser,
  ];
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-avlocal-etc-'));
  chmodSync(etc, 0o755);
  conf = join(etc, 'asmtpd.conf');
  writeFileSync(conf, `AvengerUser ${av.name}\nSeparator +\nHostname mx.${DOMAIN}\n`);
  chmodSync(conf, 0o644);

  // a local script that records who ran it and with what, edits the message and files it
  writeScript(
    scripted,
    'local',
    [
      'id -u > "$HOME/ran-as"',
      'env | sort > "$HOME/ran-env"',
      'edinplace --skipfrom sed -e "s/^Subject: /Subject: [filtered] /" || exit 75',
      'deliver "$HOME/mail/inbox"',
    ].join('\n'),
  );
  // extensions: local+lists exactly, local+default for the rest (DEFAULT = the extension)
  writeScript(ext, 'local+lists', 'echo "lists $EXTENSION ${DEFAULT-unset}" >> "$HOME/ran"; deliver "$HOME/lists/"');
  writeScript(ext, 'local+default', 'echo "default $EXTENSION $DEFAULT" >> "$HOME/ran"; deliver "$HOME/other/"');
  writeScript(ext, 'local+later', 'echo "disk on fire, try later" >&2; exit 1');
  // the shipped recipe, verbatim, as local and local+default
  const recipe = readFileSync(EXAMPLE, 'utf8');
  writeScript(example, 'local', recipe);
  writeScript(example, 'local+default', recipe);
});

after(async () => {
  if (unavailable) return;
  await pf?.stop();
  for (const u of [plain, scripted, ext, example, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

async function postfix(t: { skip(m?: string): void }): Promise<PostfixInstance | null> {
  if (!requirePostfix(t)) return null;
  pf ??= await startPostfix({
    mode: {
      local: {
        domain: DOMAIN,
        mailboxCommand: `${TOOLS}/avenger.local --config=${conf} -f "$SENDER" -D "$RECIPIENT" -a "$EXTENSION" "$USER"`,
      },
    },
  });
  return pf;
}

async function send(p: PostfixInstance, to: string, message: string, from = 'sender@remote.test'): Promise<void> {
  const c = await SmtpClient.connect(p.port);
  try {
    await c.reply();
    const r = await c.send(from, [to], message.replace(/\r?\n/g, '\r\n'));
    assert.equal(r.code, 250, r.last);
  } finally {
    c.close();
  }
}

/** The files in DIR once there are n of them (Postfix delivers asynchronously). */
async function waitForFiles(p: PostfixInstance, dir: string, n: number): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const names = existsSync(dir) ? readdirSync(dir).sort() : [];
    if (names.length >= n) return names.map((f) => join(dir, f));
    if (Date.now() > deadline)
      throw new Error(`${names.length}/${n} files in ${dir}\n--- maillog ---\n${await p.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An mbox once a whole message is in it (deliver creates the file, then writes under its lock). */
async function waitForMbox(p: PostfixInstance, file: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'latin1') : '';
    if (text.endsWith('\n\n') && !existsSync(`${file}.lock`)) return text;
    if (Date.now() > deadline) throw new Error(`no message in ${file}\n--- maillog ---\n${await p.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('Postfix → avenger.local: a user without ~/.avenger gets plain delivery to ~/Maildir/', { skip }, async (t) => {
  const p = await postfix(t);
  if (!p) return;
  await send(p, `${plain.name}@${DOMAIN}`, 'Subject: plain\n\nFrom the body\n');
  const [file] = await waitForFiles(p, join(plain.home, 'Maildir', 'new'), 1);
  const text = readFileSync(file!, 'latin1');
  assert.match(text, /^Return-Path: <sender@remote\.test>\n/, "Postfix's Return-Path, not doubled");
  assert.doesNotMatch(text, /^From /, 'no envelope line in a Maildir');
  assert.match(text, new RegExp(`\nDelivered-To: ${plain.name}@${DOMAIN}\n`));
  assert.match(text, /\nSubject: plain\n\nFrom the body\n$/);
  assert.equal(statSync(file!).uid, plain.uid, 'written as the user');
  assert.equal(statSync(file!).mode & 0o777, 0o600);
});

test(
  'Postfix → avenger.local: ~/.avenger/local runs as the user, edits the message in place, files it',
  { skip },
  async (t) => {
    const p = await postfix(t);
    if (!p) return;
    await send(p, `${scripted.name}@${DOMAIN}`, 'Subject: hello\n\nFrom the body\nline 2\n');
    const mbox = await waitForMbox(p, join(scripted.home, 'mail', 'inbox'));
    assert.equal(readFileSync(join(scripted.home, 'ran-as'), 'utf8'), `${scripted.uid}\n`);
    // Postfix's envelope line is kept, the Subject was filtered, the body's From line quoted, an empty line at the end
    assert.match(
      mbox,
      /^From sender@remote\.test  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\nReturn-Path: <sender@remote\.test>\n/,
    );
    assert.match(mbox, /\nSubject: \[filtered\] hello\n\n>From the body\nline 2\n\n$/);
    assert.equal((mbox.match(/^From /gm) ?? []).length, 1);
    const env = readFileSync(join(scripted.home, 'ran-env'), 'utf8');
    for (const line of [
      `USER=${scripted.name}`,
      `HOME=${scripted.home}`,
      'SENDER=sender@remote.test',
      'SENDER_HOST=remote.test',
      `RECIPIENT=${scripted.name}@${DOMAIN}`,
      `RECIPIENT_HOST=${DOMAIN}`,
      `AVENGER_USER=${av.name}`,
      `PATH=${TOOLS}:/usr/local/bin:/usr/bin:/bin`,
    ])
      assert.ok(env.split('\n').includes(line), `${line} in\n${env}`);
    assert.doesNotMatch(env, /^EXTENSION=/m);
    assert.equal(statSync(join(scripted.home, 'mail', 'inbox')).uid, scripted.uid);
  },
);

test('Postfix → avenger.local: local+EXT, then local+default with DEFAULT', { skip }, async (t) => {
  const p = await postfix(t);
  if (!p) return;
  await send(p, `${ext.name}+lists@${DOMAIN}`, 'Subject: to lists\n\nx\n');
  await waitForFiles(p, join(ext.home, 'lists', 'new'), 1);
  await send(p, `${ext.name}+shop@${DOMAIN}`, 'Subject: to shop\n\nx\n');
  const [file] = await waitForFiles(p, join(ext.home, 'other', 'new'), 1);
  assert.match(readFileSync(file!, 'latin1'), /\nSubject: to shop\n/);
  assert.equal(readFileSync(join(ext.home, 'ran'), 'utf8'), 'lists lists unset\ndefault shop shop\n');
});

test(
  'Postfix → avenger.local: a failing local script defers the mail (kept in the queue), with its reason',
  { skip },
  async (t) => {
    const p = await postfix(t);
    if (!p) return;
    await send(p, `${ext.name}+later@${DOMAIN}`, 'Subject: later\n\nx\n');
    const deadline = Date.now() + 30_000;
    let log = '';
    while (!/status=deferred .*disk on fire, try later/.test(log) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      log = await p.log();
    }
    assert.match(log, new RegExp(`to=<${ext.name}\\+later@${DOMAIN}>.*status=deferred .*disk on fire, try later`));
    assert.match(log, /avenger\.local: \S+: \S+local\+later exited 1/);
    assert.ok((await p.queueSize()) >= 1, 'still queued');
  },
);

test(
  'the shipped local-delivery recipe, through Postfix: tags and files by extension and List-Id',
  { skip },
  async (t) => {
    const p = await postfix(t);
    if (!p) return;
    const md = join(example.home, 'Maildir');
    await send(
      p,
      `${example.name}+shop@${DOMAIN}`,
      'Subject: your order\nFrom: shop@remote.test\n\nSubject: not this one\n',
    );
    await send(p, `${example.name}@${DOMAIN}`, 'Subject: weekly digest\nList-Id: <news.remote.test>\n\nbody\n');
    await send(p, `${example.name}@${DOMAIN}`, 'Subject: personal\n\nhi\n');
    const [shop] = await waitForFiles(p, join(md, '.shop', 'new'), 1);
    assert.match(
      readFileSync(shop!, 'latin1'),
      /\nSubject: \[shop\] your order\nFrom: shop@remote\.test\n\nSubject: not this one\n$/,
    );
    assert.ok(existsSync(join(md, '.shop', 'maildirfolder')), 'a Maildir++ folder');
    const [list] = await waitForFiles(p, join(md, '.lists', 'new'), 1);
    assert.match(readFileSync(list!, 'latin1'), /\nSubject: weekly digest\nList-Id: <news\.remote\.test>\n\nbody\n$/);
    const [inbox] = await waitForFiles(p, join(md, 'new'), 1);
    assert.match(readFileSync(inbox!, 'latin1'), /\nSubject: personal\n\nhi\n$/);
    for (const f of [shop!, list!, inbox!]) assert.equal(statSync(f).uid, example.uid);
  },
);

test(
  'avenger.local started as root: runs as the user; refuses uid 0, system accounts, unsafe files, others',
  { skip },
  async () => {
    const root = { name: 'root', uid: 0, gid: 0, home: '/root' };
    const run = (args: string[], as = root) =>
      runToolAs(as, ['avenger.local', `--config=${conf}`, ...args], { input: 'Subject: direct\n\nbody\n' });

    const ok = await run(['-f', 'direct@remote.test', scripted.name]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(scripted.home, 'ran-as'), 'utf8'), `${scripted.uid}\n`);
    assert.match(
      readFileSync(join(scripted.home, 'mail', 'inbox'), 'latin1'),
      /Subject: \[filtered\] direct\n\nbody\n\n$/,
    );

    const forRoot = await run(['root']);
    assert.equal(forRoot.code, 75);
    assert.match(forRoot.stderr, /root: refused: account root is uid 0/);
    const system = await run(['daemon']);
    assert.equal(system.code, 75);
    assert.match(system.stderr, /system account/);
    const unknown = await run(['no-such-user-xyz']);
    assert.equal(unknown.code, 67);

    // a group-writable local file: refused, nothing runs, the mail waits (75)
    const unsafe = writeScript(ext, 'local', 'touch "$HOME/unsafe-ran"; deliver "$HOME/x/"', 0o775);
    try {
      const r = await run([ext.name]);
      assert.equal(r.code, 75);
      assert.match(r.stderr, /local is group-writable/);
      assert.equal(existsSync(join(ext.home, 'unsafe-ran')), false);
    } finally {
      rmSync(unsafe);
    }

    // one user cannot deliver as another: avenger.local runs as the recipient or as root
    const other = await run([plain.name], ext);
    assert.equal(other.code, 75);
    assert.match(other.stderr, new RegExp(`running as uid ${ext.uid}, not as ${plain.name}`));

    // a failing script: its sysexits status passes, anything else is temporary
    writeScript(ext, 'local+bounce', 'echo "5.1.1 no such list" >&2; exit 67');
    writeScript(ext, 'local+crash', 'exit 1');
    const bounce = await run(['-a', 'bounce', ext.name]);
    assert.equal(bounce.code, 67);
    assert.match(bounce.stderr, /^5\.1\.1 no such list\n/, "the script's output first, for the MTA's bounce");
    assert.equal((await run(['-a', 'crash', ext.name])).code, 75);
  },
);
