/**
 * The delivery utilities (docs/utilities.md: deliver, dotlock, mailexec, edinplace) as a script
 * runs them: the installed commands of packages/asmtpd/tools, run as a real non-root user
 * (setpriv) with the utilities first on PATH. Byte-exact Maildir and mbox files; 2 × 50 deliver
 * processes appending large messages to one mbox at once, every message whole afterwards; the
 * options and exit codes of each. Needs root (useradd, switching users).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';
import { runToolAs, TOOLS } from '../support/run-tool.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;

before(() => {
  if (unavailable) return;
  u = createUser('deliv');
});

after(() => {
  if (!unavailable && u) removeUser(u);
});

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** asctime(3) in UTC (the commands run with TZ=UTC) */
function asctimeUtc(seconds: number): string {
  const d = new Date(seconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p(
    d.getUTCHours(),
  )}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

/** Byte-equal to make(date1, date2) for seconds since t0, date2 not before date1 (two deliveries). */
function assertBytesWithDate(actual: Buffer, t0: number, make: (date1: string, date2: string) => string): void {
  const want: string[] = [];
  const first = Math.floor(t0 / 1000);
  const last = Math.floor(Date.now() / 1000);
  for (let s1 = first; s1 <= last; s1++)
    for (let s2 = s1; s2 <= last; s2++) want.push(make(asctimeUtc(s1), asctimeUtc(s2)));
  assert.ok(want.includes(actual.toString('latin1')), `unexpected file:\n${actual.toString('latin1').slice(0, 2000)}`);
}

const MESSAGE =
  'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\nSubject: bytes\n\n' +
  'From the first line of the body\n>From an already quoted line\n>>From twice\nFrom:not a From_ line\n' +
  'last line without a newline';

test('deliver: Maildir and mbox files byte for byte, owned by the user, private', { skip }, async () => {
  const t0 = Date.now();
  const r = await runToolAs(u, ['deliver', 'Maildir/', 'mail/inbox', '-'], {
    input: MESSAGE,
    env: { SENDER: 'alice@sender.example', TZ: 'UTC' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString('latin1'), `Return-Path: <alice@sender.example>\n${MESSAGE}`);

  const names = readdirSync(join(u.home, 'Maildir', 'new'));
  assert.equal(names.length, 1);
  assert.deepEqual(readdirSync(join(u.home, 'Maildir', 'tmp')), []);
  const file = join(u.home, 'Maildir', 'new', names[0]!);
  assert.equal(readFileSync(file, 'latin1'), `Return-Path: <alice@sender.example>\n${MESSAGE}`);
  assert.equal(statSync(file).uid, u.uid);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(u.home, 'Maildir')).mode & 0o777, 0o700);

  // a second message, from the null sender, to the same mbox
  const r2 = await runToolAs(u, ['deliver', 'mail/inbox'], {
    input: 'Subject: bounce\n\nFrom here\n',
    env: { SENDER: '', TZ: 'UTC' },
  });
  assert.equal(r2.code, 0, r2.stderr);
  const mbox = join(u.home, 'mail', 'inbox');
  assertBytesWithDate(
    readFileSync(mbox),
    t0,
    (d, d2) =>
      `From alice@sender.example ${d}\nReturn-Path: <alice@sender.example>\n` +
      'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\nSubject: bytes\n\n' +
      '>From the first line of the body\n>>From an already quoted line\n>>>From twice\nFrom:not a From_ line\n' +
      'last line without a newline\n\n' +
      `From MAILER-DAEMON ${d2}\nReturn-Path: <>\nSubject: bounce\n\n>From here\n\n`,
  );
  assert.equal(statSync(mbox).uid, u.uid);
  assert.equal(statSync(mbox).mode & 0o777, 0o600);
  assert.equal(existsSync(`${mbox}.lock`), false);
});

test(
  'deliver: 2 × 50 processes appending 256 KiB messages to one mbox at once: every message whole, none lost',
  { skip },
  async () => {
    const mbox = join(u.home, 'concurrent');
    const body = (id: string) => {
      const lines: string[] = [];
      for (let i = 0; i < 2048; i++)
        lines.push(i % 97 === 0 ? `From ${id} line ${i}` : `${id} line ${i} ${'x'.repeat(100)}`);
      return `Subject: ${id}\nMessage-ID: <${id}@test>\n\n${lines.join('\n')}\n`;
    };
    const ids = ['a', 'b'].flatMap((g) => Array.from({ length: 50 }, (_, i) => `${g}-${i}`));
    const t0 = Date.now();
    const runs = await Promise.all(
      ids.map((id) =>
        runToolAs(u, ['deliver', '--timeout=300', mbox], {
          input: body(id),
          env: { SENDER: `${id}@x.example`, TZ: 'UTC' },
        }),
      ),
    );
    for (const [i, r] of runs.entries()) assert.equal(r.code, 0, `${ids[i]}: ${r.stderr}`);

    // parse it independently: envelope lines are the only lines starting "From " after an empty line
    const text = readFileSync(mbox, 'latin1');
    const starts = [...text.matchAll(/(?:^|\n\n)(From ([a-b]-\d+)@x\.example (.{24})\n)/g)];
    assert.equal(starts.length, 100, 'one envelope line per message');
    const seen = new Set<string>();
    for (const [k, m] of starts.entries()) {
      const id = m[2]!;
      seen.add(id);
      const from = m.index! + (m[0].startsWith('\n') ? 2 : 0);
      const end: number = k + 1 < starts.length ? starts[k + 1]!.index! + 2 : text.length;
      const quoted = body(id).replace(/(^|\n)(>*From )/g, '$1>$2');
      assert.equal(text.slice(from, end), `${m[1]}Return-Path: <${id}@x.example>\n${quoted}\n`, `message ${id} whole`);
      const when = Date.parse(`${m[3]!.slice(4)} UTC`);
      assert.ok(when >= Math.floor(t0 / 1000) * 1000 && when <= Date.now(), `${id}: date ${m[3]}`);
    }
    assert.equal(seen.size, 100, 'every message once');
    assert.equal(existsSync(`${mbox}.lock`), false);
  },
);

test(
  'deliver: hostile senders are data; a huge line is delivered whole; 75 and 64 as documented',
  { skip },
  async () => {
    const mark = join(tmpdir(), `deliver-pwned-${process.pid}`);
    const evil = `$(touch ${mark})\`touch ${mark}\`@x.example`;
    const r = await runToolAs(u, ['deliver', 'hostile/'], {
      input: `Subject: x\n\n${'y'.repeat(5_000_000)}\n`,
      env: { SENDER: `${evil}\nBcc: victim@x.example` },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(mark), false);
    const [name] = readdirSync(join(u.home, 'hostile', 'new'));
    const got = readFileSync(join(u.home, 'hostile', 'new', name!), 'latin1');
    assert.equal(got, `Return-Path: <${evil}?Bcc: victim@x.example>\nSubject: x\n\n${'y'.repeat(5_000_000)}\n`);

    // a directory it may not write: 75, said
    const denied = await runToolAs(u, ['deliver', '/root/not-yours/'], { input: 'x\n' });
    assert.equal(denied.code, 75);
    assert.match(denied.stderr, /^deliver: \/root\/not-yours\/: .*EACCES/);
    const usage = await runToolAs(u, ['deliver'], { input: 'x\n' });
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /usage: deliver/);
  },
);

test(
  'deliver waits for dotlock and gives up with 75 after --timeout; after the lock, it delivers',
  { skip },
  async () => {
    const mbox = join(u.home, 'locked-mbox');
    const holder = runToolAs(u, ['dotlock', mbox, 'sleep', '2']);
    // wait until the holder has its lock file
    for (let i = 0; i < 200 && !existsSync(`${mbox}.lock`); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(`${mbox}.lock`));
    const late = await runToolAs(u, ['deliver', '--timeout=0.5', mbox], { input: 'Subject: late\n\n' });
    assert.equal(late.code, 75);
    assert.match(late.stderr, /timed out/);
    const waiting = runToolAs(u, ['deliver', '--timeout=30', mbox], {
      input: 'Subject: patient\n\n',
      env: { SENDER: 'p@x' },
    });
    assert.equal((await holder).code, 0);
    const r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(mbox, 'latin1'), /^From p@x .{24}\nReturn-Path: <p@x>\nSubject: patient\n\n\n$/);
  },
);

test('dotlock: the command runs as the user under the lock; its status; 127, 75 and 64', { skip }, async () => {
  const mbox = join(u.home, 'dl-mbox');
  writeFileSync(mbox, '');
  chownSync(mbox, u.uid, u.gid);
  const r = await runToolAs(u, [
    'dotlock',
    mbox,
    'sh',
    '-c',
    'test -e "$0.lock" && flock -n "$0" true; echo $? $(id -u); exit 3',
    mbox,
  ]);
  assert.equal(r.code, 3);
  assert.equal(r.stdout.toString(), `1 ${u.uid}\n`, 'the lock file exists and the flock is held');
  const l = await runToolAs(u, ['dotlock', '-L', mbox, 'flock', '-n', mbox, 'true']);
  assert.equal(l.code, 0, '-L: no flock held');
  assert.equal((await runToolAs(u, ['dotlock', mbox, 'no-such-command-xyz'])).code, 127);
  assert.equal((await runToolAs(u, ['dotlock', '/root/mbox', 'true'])).code, 75, 'no permission for /root/mbox.lock');
  assert.equal((await runToolAs(u, ['dotlock', mbox])).code, 64);
  assert.equal(existsSync(`${mbox}.lock`), false);
});

test(
  "edinplace: a seekable stdin edited in place and rewound; failures leave it alone; root's file refused",
  { skip },
  async () => {
    const file = join(u.home, 'message');
    writeFileSync(file, 'From s@x Mon Jan  1 00:00:00 2024\nSubject: hello\n\nbody\n');
    chownSync(file, u.uid, u.gid);
    chmodSync(file, 0o600);
    // as in a local script: filter, then the next command reads the result from the start
    const r = await runToolAs(u, ['sh', '-c', 'edinplace --skipfrom sed s/hello/HELLO/ && cat'], { stdinFile: file });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'From s@x Mon Jan  1 00:00:00 2024\nSubject: HELLO\n\nbody\n');
    assert.equal(readFileSync(file, 'utf8'), 'From s@x Mon Jan  1 00:00:00 2024\nSubject: HELLO\n\nbody\n');

    const failed = await runToolAs(u, ['sh', '-c', 'edinplace sh -c "echo junk; exit 5"; echo "status $?"; cat'], {
      stdinFile: file,
    });
    assert.equal(failed.stdout.toString(), 'status 5\nFrom s@x Mon Jan  1 00:00:00 2024\nSubject: HELLO\n\nbody\n');

    const f = join(u.home, 'notes');
    writeFileSync(f, 'b\na\n');
    chownSync(f, u.uid, u.gid);
    assert.equal((await runToolAs(u, ['edinplace', '-f', f, 'sort'])).code, 0);
    assert.equal(readFileSync(f, 'utf8'), 'a\nb\n');

    // root's file, readable by the user: open for reading is not permission to write
    const rootFile = join(u.home, 'root-owned');
    writeFileSync(rootFile, 'root data\n');
    chmodSync(rootFile, 0o644);
    const refused = await runToolAs(u, ['edinplace', '-x', '75', 'cat'], { stdinFile: rootFile });
    assert.equal(refused.code, 75);
    assert.match(refused.stderr, /cannot open standard input for writing: .*EACCES/);
    assert.equal(readFileSync(rootFile, 'utf8'), 'root data\n');
    const pipe = await runToolAs(u, ['edinplace', 'cat'], { input: 'x' });
    assert.equal(pipe.code, 1);
    assert.match(pipe.stderr, /not a file/);
  },
);

test('mailexec: an mbox into a Maildir and back (deliver per message), -n, -F, exit codes', { skip }, async () => {
  const src = join(u.home, 'src-mbox');
  const mboxText =
    'From a@x.example Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From quoted\n\n' +
    'From b@x.example Tue Jan  2 00:00:00 2024\nSubject: two\n\nsecond\n\n';
  writeFileSync(src, mboxText);
  chownSync(src, u.uid, u.gid);
  const r = await runToolAs(u, ['mailexec', src, 'deliver', 'converted/']);
  assert.equal(r.code, 0, r.stderr);
  const md = join(u.home, 'converted');
  const files = readdirSync(join(md, 'new')).sort();
  assert.deepEqual(
    files.map((f) => readFileSync(join(md, 'new', f), 'latin1')),
    [
      'Return-Path: <a@x.example>\nSubject: one\n\nFrom quoted\n',
      'Return-Path: <b@x.example>\nSubject: two\n\nsecond\n',
    ],
  );
  // back into an mbox: envelope lines from Return-Path (dates from the files), >From quoted again
  const back = await runToolAs(u, ['mailexec', 'converted', 'deliver', 'back-mbox'], { env: { TZ: 'UTC' } });
  assert.equal(back.code, 0, back.stderr);
  assert.match(
    readFileSync(join(u.home, 'back-mbox'), 'latin1'),
    /^From a@x\.example .{24}\nReturn-Path: <a@x\.example>\nSubject: one\n\n>From quoted\n\nFrom b@x\.example .{24}\nReturn-Path: <b@x\.example>\nSubject: two\n\nsecond\n\n$/,
  );
  const count = await runToolAs(u, ['mailexec', '-n', '-F', 'converted', 'head', '-1']);
  assert.equal(count.stdout.toString(), 'Return-Path: <a@x.example>\nReturn-Path: <b@x.example>\n');
  assert.equal((await runToolAs(u, ['mailexec', src, 'grep', '-q', 'second'])).code, 1, 'a failing command: 1');
  assert.equal((await runToolAs(u, ['mailexec', '/root', 'cat'])).code, 2, 'an unreadable mailbox: 2');
  assert.equal((await runToolAs(u, ['mailexec', src])).code, 2);
});

test('the installed commands are executable by everyone', () => {
  for (const name of ['deliver', 'dotlock', 'mailexec', 'edinplace', 'avenger.local'])
    assert.ok((statSync(join(TOOLS, name)).mode & 0o111) === 0o111, `${name} is executable`);
});
