/**
 * Attack 1 of issue 13 (docs/security.md): a compromised SMTP process drives the script runner.
 *
 * The daemon is started as root. The test then makes the SMTP process itself write into its pipe
 * to the runner (gdb calls write() inside it: its credentials, its descriptor — exactly what a bug
 * in it would allow): the requests that worked at df3c8d8 — a command as nobody with gid 0 and
 * groups 0, 6 (disk), 42 (shadow); a command as another ordinary user, writing into their home; a
 * root-only file fed to a command as its stdin — and hostile requests of the current protocol: a
 * forged body-test token, LD_PRELOAD and the helpers' program in an environment, a file name
 * outside rcpt*. Nothing may run; the runner says why in the daemon's log.
 * Needs root and gdb (CI installs it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';
import { callInProcess, cString, gdbAvailable, theProcess } from '../support/procs.js';

const unavailable = canCreateUsers() ?? gdbAvailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root with gdb: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let victim: TestUser;
let d: Daemon;
let base: string;
let marks: string;
let secret: string;

before(async () => {
  if (unavailable) return;
  victim = createUser('pipe');
  base = mkdtempSync(join(tmpdir(), 'asmtpd-attack1-'));
  chmodSync(base, 0o755);
  marks = join(base, 'marks');
  mkdirSync(marks);
  chmodSync(marks, 0o1777);
  // a root-only file, as /etc/shadow is
  mkdirSync(join(base, 'root-only'), { mode: 0o700 });
  secret = join(base, 'root-only', 'secret');
  writeFileSync(secret, 'ROOT-ONLY-SECRET\n', { mode: 0o600 });
  writeScript(
    victim,
    'rcpt',
    `echo "LD_PRELOAD=\${LD_PRELOAD-unset} NODE=\${ASMTPD_NODE-unset}" > ${marks}/victim-script; accept`,
  );
  d = await startDaemon({ conf: ['LocalDomain a.example', 'Separator +'].join('\n') });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  if (victim) removeUser(victim);
  if (base) rmSync(base, { recursive: true, force: true });
});

/** The SMTP process's descriptor that writes to the runner's stdin (Node's stdio pipes are socket pairs). */
function runnerPipeFd(daemonPid: number): number {
  const runner = theProcess(daemonPid, 'runner');
  const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${runner.pid}/fd/0`))?.[1];
  assert.ok(inode, "the runner's stdin is a socket pair");
  // ss: "u_str ESTAB 0 0 * LOCAL * PEER users:…" — the other end of the runner's stdin
  const peer = execFileSync('ss', ['-xH'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /\*\s+(\d+)\s+\*\s+(\d+)/.exec(l))
    .find((m) => m?.[1] === inode)?.[2];
  const fd = readdirSync(`/proc/${daemonPid}/fd`).find((n) => {
    try {
      return readlinkSync(`/proc/${daemonPid}/fd/${n}`) === `socket:[${peer}]`;
    } catch {
      return false;
    }
  });
  assert.ok(
    fd !== undefined,
    `the SMTP process holds the other end (socket ${peer}) of the runner's stdin (socket ${inode})`,
  );
  return Number(fd);
}

test(
  "requests written into the runner's pipe by the SMTP process itself run nothing of their choosing",
  { skip },
  async () => {
    const pid = d.proc.pid!;
    const fd = runnerPipeFd(pid);
    const sh = (cmd: string): string[] => ['/bin/sh', '-c', cmd];
    const requests: Array<Record<string, unknown>> = [
      // df3c8d8's protocol: credentials and paths taken from the pipe
      {
        id: 990001,
        kind: 'command',
        uid: 65534,
        gid: 0,
        groups: [0, 6, 42],
        user: 'nobody',
        home: '/',
        env: {},
        timeoutMs: 5000,
        argv: sh(`id > ${marks}/as-nobody-gid0`),
      },
      {
        id: 990002,
        kind: 'command',
        uid: victim.uid,
        gid: victim.gid,
        groups: [victim.gid],
        user: victim.name,
        home: victim.home,
        env: {},
        timeoutMs: 5000,
        argv: sh(`touch ${victim.home}/pwned`),
      },
      {
        id: 990003,
        kind: 'command',
        uid: 65534,
        gid: 65534,
        groups: [65534],
        user: 'nobody',
        home: '/',
        env: {},
        timeoutMs: 5000,
        stdinPath: secret,
        argv: sh(`cat > ${marks}/stolen`),
      },
      {
        id: 990004,
        kind: 'rcpt',
        uid: 65534,
        gid: 0,
        groups: [0],
        user: 'x',
        home: '/',
        dir: join(base, 'root-only'),
        candidates: ['secret'],
        env: {},
        timeoutMs: 5000,
      },
      // today's protocol, used with hostile values
      { id: 990005, kind: 'bodytest', token: 'f'.repeat(32), spool: 'x', timeoutMs: 5000 },
      {
        id: 990006,
        kind: 'rcpt',
        scope: 'user',
        account: victim.name,
        candidates: ['rcpt'],
        env: { LD_PRELOAD: `${marks}/evil.so`, ASMTPD_NODE: `${marks}/evil` },
        timeoutMs: 5000,
      },
      { id: 990007, kind: 'rcpt', scope: 'system', candidates: ['../../../tmp/x'], env: {}, timeoutMs: 5000 },
      { id: 990008, kind: 'rcpt', scope: 'user', account: 'nobody', candidates: ['rcpt'], env: {}, timeoutMs: 5000 },
    ];
    for (const r of requests) {
      const line = `${JSON.stringify(r)}\n`;
      const written = callInProcess(pid, `(long)write(${fd}, ${cString(line)}, ${Buffer.byteLength(line)})`);
      assert.equal(written, String(Buffer.byteLength(line)), 'the SMTP process wrote the request into the pipe');
    }
    // the runner answers the SMTP process (ids it does not know); wait for what would have run
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(
      readdirSync(marks).filter((f) => f !== 'victim-script'),
      [],
      'nothing ran as nobody or group 0, nothing read the root-only file',
    );
    assert.equal(existsSync(join(victim.home, 'pwned')), false, "nothing ran as another user of the pipe's choosing");
    // the victim's own policy script may run (any client can make it run by sending mail), as the
    // victim, without the request's environment
    if (existsSync(join(marks, 'victim-script')))
      assert.equal(readFileSync(join(marks, 'victim-script'), 'utf8'), `LD_PRELOAD=unset NODE=${process.execPath}\n`);
    const said = d.logs.filter((l) => l.event === 'runner.log').map((l) => String(l.line));
    for (const why of [
      /unknown field "uid"/,
      /unknown field "stdinPath"|kind must be/,
      /unknown or expired body-test token/,
      /candidates must be unknown, relay or default/,
      /refused rcpt request: account nobody/,
    ]) {
      assert.ok(
        said.some((l) => why.test(l)),
        `the runner logged ${why}: ${said.join(' | ')}`,
      );
    }
    assert.ok(!said.some((l) => l.includes(secret)), 'no answer names the root-only file');
  },
);
