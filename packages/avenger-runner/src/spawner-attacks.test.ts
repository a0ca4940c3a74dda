// Attacks on the spawner (libexec/spawner.c), the root forker every script starts through: the real
// binary driven with raw frames on its stdin (and through the Spawner class), as root with a real
// temporary user. Each test is one property: malformed frames are answered (E) or end the spawner,
// never run anything; hostile data reaches the child as data; lookup names are one path component;
// the child's state read from inside it; a stuck spawner is replaced; and the same attacks plus
// normal runs under AddressSanitizer and UndefinedBehaviorSanitizer.
//
// Sanitizers and clone(CLONE_VM|CLONE_VFORK): they work together with gcc 12's ASan/UBSan and no
// special ASAN_OPTIONS. The child runs on a heap-allocated stack that ASan sees as ordinary
// addressable heap; it calls no allocator and never returns (execve or _exit), so the redzones its
// frames leave in that block's shadow are never read by the parent (which only passes the block to
// clone). Reports go to files (log_path, so a child's report before its exec is seen too) and any
// file there, or "Sanitizer"/"runtime error" on the spawner's stderr, fails the test.
import assert from 'node:assert/strict';
import {
  spawn,
  spawnSync,
  execFileSync,
  type ChildProcess,
  type ChildProcessWithoutNullStreams,
} from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_LIMITS } from './protocol.js';
import { Spawner, spawnerPath, type PrivilegedChildSpec } from './spawner.js';
import { createTempUser, isRoot, waitForEmptyGroup, type TempUser } from './testing/users.js';

if (!isRoot && process.env.CI) throw new Error('CI runs as root: spawner-attacks needs root (users, id switches)');
const skip = isRoot ? false : 'needs root (creates a user, the spawner switches ids)';

// ---- helpers -------------------------------------------------------------------------------------

/** NPROC, CPU, DATA, FSIZE, NOFILE: values no default has, so the child's limits show where they came from */
const LIMITS = [300, 50, 900_000_000, 400_000_000, 200] as const;
const LIMITS_ARG = `--limits=${LIMITS.join(',')}`;

interface Reply {
  type: string;
  token: string;
  words: string[];
  line: string;
  out: Buffer;
  err: Buffer;
  dec: Buffer;
}

/** The spawner binary on raw pipes: frames in, parsed reply lines (and R bodies) out. */
class RawSpawner {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly replies: Reply[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private inbox = Buffer.alloc(0);

  /**
   * command: the binary, or a wrapper and its arguments ending with the binary (env VAR=… spawner);
   * inherit: a descriptor the spawner inherits as fd 12 without close-on-exec (as a stray one of its starter would)
   */
  constructor(command: string[] = [spawnerPath], inherit?: number) {
    const extra = inherit === undefined ? [] : [...Array<'ignore'>(9).fill('ignore'), inherit];
    this.proc = spawn(command[0]!, [...command.slice(1), LIMITS_ARG], {
      env: {},
      stdio: ['pipe', 'pipe', 'pipe', ...extra],
    }) as ChildProcessWithoutNullStreams;
    this.proc.stdin.on('error', () => {});
    this.proc.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    this.proc.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => resolve(code)));
  }

  send(fields: string[]): void {
    this.sendRaw(frame(fields));
  }

  sendRaw(bytes: string | Buffer): void {
    this.proc.stdin.write(bytes);
  }

  /** The final answer (E, X or R) for token. */
  async result(token: string, timeoutMs = 15_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.replies.find((x) => x.token === token && x.type !== 'S');
      if (r) return r;
      if (Date.now() > deadline) throw new Error(`no answer for ${token}; stderr: ${this.stderr}`);
      await sleep(5);
    }
  }

  /** End its stdin, wait for its exit, and fail on any sanitizer report on its stderr. */
  async close(): Promise<number | null> {
    this.proc.stdin.end();
    const code = await this.exited;
    assert.doesNotMatch(this.stderr, SANITIZER_REPORT);
    return code;
  }

  private receive(chunk: Buffer): void {
    this.inbox = Buffer.concat([this.inbox, chunk]);
    for (;;) {
      const eol = this.inbox.indexOf(10);
      if (eol < 0) return;
      const line = this.inbox.toString('latin1', 0, eol);
      const [type = '', token = '', ...words] = line.split(' ');
      let body = Buffer.alloc(0);
      let end = eol + 1;
      if (type === 'R') {
        end += Number(words[2]) + Number(words[3]) + Number(words[4]);
        if (this.inbox.length < end) return;
        body = this.inbox.subarray(eol + 1, end);
      }
      const o = Number(words[2] ?? 0);
      const e = Number(words[3] ?? 0);
      this.replies.push({
        type,
        token,
        words,
        line,
        out: body.subarray(0, o),
        err: body.subarray(o, o + e),
        dec: body.subarray(o + e),
      });
      this.inbox = this.inbox.subarray(end);
    }
  }
}

function frame(fields: string[]): Buffer {
  const payload = Buffer.from(fields.join('\0'));
  return Buffer.concat([Buffer.from(`${payload.length}\n`), payload]);
}

interface RunFrame {
  uid?: string;
  gid?: string;
  groups?: string;
  cwd?: string;
  stdin?: string;
  decision?: string;
  maxBytes?: string;
  /** AS DIR (NAME NEXTRA EXTRA…)… */
  lookup?: string[];
  argv: string[];
  env?: string[];
}

/** A run frame's fields for the test user (every field overridable with any string). */
function runFields(user: TempUser, token: string, r: RunFrame): string[] {
  const lookup = r.lookup ?? [];
  return [
    'run',
    token,
    r.uid ?? String(user.uid),
    r.gid ?? String(user.gid),
    r.groups ?? user.groups.join(' '),
    r.cwd ?? user.home,
    r.stdin ?? '',
    r.decision ?? '1',
    r.maxBytes ?? '65536',
    String(lookup.length),
    ...lookup,
    String(r.argv.length),
    ...r.argv,
    ...(r.env ?? []),
  ];
}

const SANITIZER_REPORT = /Sanitizer|runtime error/;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Live processes (not zombies) whose real uid is uid. */
function processesOf(uid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) found.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return found;
}

function statusField(status: string, name: string): string {
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status);
  assert.ok(m, `${name} in /proc/PID/status`);
  return m[1]!.trim();
}

/** The Spawner's current spawner process (private: a test looks at it, the runner never does). */
function spawnerProcess(s: Spawner): ChildProcess | null {
  return (s as unknown as { child: ChildProcess | null }).child;
}

function writeScript(path: string, text: string, owner: TempUser, mode = 0o755): void {
  writeFileSync(path, text);
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
}

function userDir(path: string, owner: TempUser, mode = 0o755): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
  return path;
}

// ---- the attacks, each a function of the spawner command so the sanitizer test runs them again ----

let user: TempUser;
let marker: string;
let tokens = 0;
const token = () => `t${++tokens}`;
const touch = () => ['/bin/sh', '-c', `touch ${marker}`];

/** Frames the spawner must answer with E TOKEN …, each with what the line must say. */
function malformedFrames(): Array<[string, (t: string) => string[], RegExp]> {
  const base = (t: string, r: Partial<RunFrame> = {}) => runFields(user, t, { argv: touch(), ...r });
  const at = (i: number, v: string) => (t: string) => base(t).map((f, j) => (j === i ? v : f));
  const cases: Array<[string, (t: string) => string[], RegExp]> = [
    ['too few fields', (t) => base(t).slice(0, 6), /malformed request/],
    ['a frame of the verb and token only', (t) => ['run', t], /malformed request/],
    ['unknown verb', (t) => ['exec', t, ...base(t).slice(2)], /unknown request/],
    ['uid 0', (t) => base(t, { uid: '0' }), /refusing uid 0/],
    ['uid 000', (t) => base(t, { uid: '000' }), /refusing uid 0/],
    ['gid 0', (t) => base(t, { gid: '0' }), /refusing group 0/],
    ['group 0 among the groups', (t) => base(t, { groups: `${user.gid} 0` }), /refusing group 0/],
    [
      'stdin not a /proc/PID/fd/N path',
      (t) => base(t, { stdin: '/etc/shadow' }),
      /stdin is not a \/proc\/PID\/fd\/N path/,
    ],
    ['stdin a /proc path of another kind', (t) => base(t, { stdin: '/proc/1/root/etc/shadow' }), /stdin is not/],
    ['ARGC 0', (t) => base(t, { argv: [] }), /no program/],
    ['NLOOKUP 1', (t) => base(t, { lookup: ['1'] }), /malformed lookup/],
    ['NEXTRA past the end', (t) => base(t, { lookup: ['1', user.avengerDir, 'rcpt', '5', 'A=1'] }), /malformed lookup/],
    ['NEXTRA non-numeric', (t) => base(t, { lookup: ['1', user.avengerDir, 'rcpt', 'x'] }), /malformed lookup/],
    ['NEXTRA negative', (t) => base(t, { lookup: ['1', user.avengerDir, 'rcpt', '-1', 'A=1'] }), /malformed lookup/],
    [
      'NEXTRA overflowing',
      (t) => base(t, { lookup: ['1', user.avengerDir, 'rcpt', '18446744073709551617'] }),
      /malformed lookup/,
    ],
    ['a candidate without NEXTRA', (t) => base(t, { lookup: ['1', user.avengerDir, 'rcpt'] }), /malformed lookup/],
    [
      '65537 groups',
      (t) => base(t, { groups: Array.from({ length: 65537 }, (_, i) => i + 1).join(' ') }),
      /malformed groups/,
    ],
    [
      'ARGC past the end',
      (t) => base(t).map((f, j, a) => (j === 9 + 1 ? String(a.length - 10) : f)),
      /malformed request/,
    ],
    [
      'NLOOKUP past the end',
      (t) => base(t).map((f, j, a) => (j === 9 ? String(a.length - 10) : f)),
      /malformed request/,
    ],
  ];
  const bad = ['', 'x', '-1', '+1', ' 1', '1 ', '1x', '0x10', '4294967295', '18446744073709551616', '9'.repeat(40)];
  for (const v of bad) {
    cases.push([`uid ${JSON.stringify(v)}`, at(2, v), /malformed request/]);
    cases.push([`gid ${JSON.stringify(v)}`, at(3, v), /malformed request/]);
    if (v !== '4294967295') cases.push([`MAXBYTES ${JSON.stringify(v)}`, at(8, v), /malformed request/]);
    cases.push([`NLOOKUP ${JSON.stringify(v)}`, at(9, v), /malformed request/]);
    cases.push([`ARGC ${JSON.stringify(v)}`, at(10, v), /malformed request/]);
  }
  cases.push(['MAXBYTES over SIZE_MAX/2', at(8, '9223372036854775808'), /malformed request/]);
  for (const g of ['a', '1,2', '-1', '1 -2', '4294967295', '18446744073709551616', '1\t2', '0x1'])
    cases.push([`groups ${JSON.stringify(g)}`, (t) => base(t, { groups: g }), /malformed groups/]);
  return cases;
}

/** Frames the spawner cannot answer: it must end (non-zero, a line on stderr) having run nothing. */
function fatalFrames(): Array<[string, Buffer]> {
  const run = (t: string) => runFields(user, t, { argv: touch() });
  const payload = (fields: string[]) => Buffer.from(fields.join('\0'));
  return [
    ['the verb alone', frame(['run'])],
    ['an empty token', frame(run(''))],
    ['a token with a space', frame(run('a b'))],
    ['a token with a newline', frame(run('a\nb'))],
    ['a token with a slash', frame(run('../x'))],
    ['a 32-character token', frame(run('t'.repeat(32)))],
    ['abandon without a token', frame(['abandon'])],
    ['a non-numeric length', Buffer.concat([Buffer.from('12x\n'), payload(run('t1'))])],
    ['a negative length', Buffer.from('-5\nhello')],
    ['a length over 16 MiB', Buffer.concat([Buffer.from(`${16 * 2 ** 20 + 1}\n`), payload(run('t1'))])],
    ['a length line without end', Buffer.from('1'.repeat(20))],
    ['an empty frame', Buffer.from('0\n')],
  ];
}

async function attackMalformed(command: string[]): Promise<void> {
  const s = new RawSpawner(command);
  try {
    const cases = malformedFrames();
    const sent = cases.map(([name, fields]) => {
      const t = token();
      s.send(fields(t));
      return { name, t };
    });
    for (const [i, { name, t }] of sent.entries()) {
      const r = await s.result(t);
      assert.equal(r.type, 'E', `${name}: ${r.line}`);
      assert.match(r.line, cases[i]![2], name);
    }
    assert.equal(s.replies.filter((r) => r.type === 'S').length, 0, 'nothing was started');
    const ok = token();
    s.send(runFields(user, ok, { argv: ['/bin/sh', '-c', 'echo still serving'] }));
    const r = await s.result(ok);
    assert.equal(r.type, 'R', r.line);
    assert.equal(r.out.toString(), 'still serving\n');
  } finally {
    await s.close();
  }
  assert.equal(existsSync(marker), false, 'a malformed frame ran its program');
}

async function attackFatal(command: string[]): Promise<void> {
  for (const [name, bytes] of fatalFrames()) {
    const s = new RawSpawner(command);
    s.sendRaw(bytes);
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)));
    const code = await Promise.race([s.exited, hung]);
    clearTimeout(timer);
    if (code === 'hung') s.proc.kill('SIGKILL');
    assert.notEqual(code, 'hung', `${name}: the spawner neither answered nor ended`);
    assert.notEqual(code, 0, `${name}: exit code`);
    assert.match(s.stderr, /^spawner: /m, name);
    assert.doesNotMatch(s.stderr, SANITIZER_REPORT, name);
    assert.equal(s.replies.length, 0, `${name}: ${s.replies.map((r) => r.line).join(' | ')}`);
    assert.equal(existsSync(marker), false, `${name}: the program ran`);
    assert.deepEqual(processesOf(user.uid), [], `${name}: a process of the user exists`);
  }
}

const HOSTILE = [
  '$(touch MARK)',
  '`touch MARK`',
  '; touch MARK',
  '| touch MARK &',
  'a\nb\r\nc\n',
  `'"\\'"`,
  '$HOME ${PATH} * ?',
  ' leading and trailing ',
  '\x01\x1b[31m\x7f',
  'é €',
  '-n',
  'x'.repeat(10_240),
];

async function attackHostileData(command: string[]): Promise<void> {
  const values = HOSTILE.map((v) => v.replaceAll('MARK', marker));
  const s = new RawSpawner(command);
  try {
    // argv through a shell's "$@"
    const t = token();
    const script = 'printf "%s\\000" "$@"';
    s.send(runFields(user, t, { argv: ['/bin/sh', '-c', script, 'sh', ...values], maxBytes: '1000000' }));
    const r = await s.result(t);
    assert.equal(r.type, 'R', r.line);
    assert.equal(r.err.toString(), '');
    assert.ok(r.out.equals(Buffer.from(values.map((v) => `${v}\0`).join(''))), 'argv bytes differ');

    // the environment, printed by env exec'd directly (a shell would add PWD)
    const env = ['A=first', 'NOEQUALS', '=nameless', 'B=first', ...values.map((v, i) => `V${i}=${v}`), 'A=last'];
    const te = token();
    s.send(runFields(user, te, { argv: ['/usr/bin/env', '-0'], env, maxBytes: '1000000' }));
    const re = await s.result(te);
    assert.equal(re.type, 'R', re.line);
    const got = re.out.toString().split('\0').slice(0, -1).sort();
    const expected = ['A=last', 'B=first', ...values.map((v, i) => `V${i}=${v}`)].sort();
    assert.ok(JSON.stringify(got) === JSON.stringify(expected), `environment: ${JSON.stringify(got).slice(0, 500)}`);

    // a lookup candidate's extra environment overrides the frame's (the script's path is appended as $0)
    writeScript(join(user.avengerDir, 'rcpt'), '#!/bin/sh\n', user);
    const t2 = token();
    const lookup = ['1', user.avengerDir, 'rcpt', '2', 'B=candidate', `W=${values[0]}`];
    const show = 'printf "%s|%s|%s|%s" "$B" "$C" "$W" "$0"';
    s.send(runFields(user, t2, { argv: ['/bin/sh', '-c', show], env: ['B=frame', 'C=c'], lookup }));
    const r2 = await s.result(t2);
    assert.equal(r2.type, 'R', r2.line);
    assert.equal(r2.out.toString(), `candidate|c|${values[0]}|${join(user.avengerDir, 'rcpt')}`);
  } finally {
    await s.close();
  }
  assert.equal(existsSync(marker), false, 'hostile data was executed');
}

async function attackLookupNames(command: string[]): Promise<void> {
  const d = userDir(join(user.avengerDir, 'd'), user);
  userDir(join(d, 'a'), user);
  writeScript(join(user.avengerDir, 'x'), `#!/bin/sh\ntouch ${marker}\n`, user);
  writeScript(join(d, 'a', 'b'), `#!/bin/sh\ntouch ${marker}\n`, user);
  const s = new RawSpawner(command);
  const lookupRun = (lookup: string[]) => {
    const t = token();
    s.send(runFields(user, t, { argv: ['/bin/sh'], lookup }));
    return s.result(t);
  };
  try {
    // the files the names point at pass the checks themselves (found; not run: sh -c true gets the path as $0)
    for (const [dir, name] of [
      [user.avengerDir, 'x'],
      [join(d, 'a'), 'b'],
    ] as const) {
      const t = token();
      s.send(runFields(user, t, { argv: ['/bin/sh', '-c', 'true'], lookup: ['1', dir, name, '0'] }));
      const r = await s.result(t);
      assert.equal(r.type, 'R', `${dir}/${name}: ${r.line}`);
    }
    for (const as of ['1', '0'])
      for (const name of ['../x', 'a/b', '.', '..', '', '/etc/passwd', 'a/']) {
        const r = await lookupRun([as, d, name, '0']);
        assert.equal(r.type, 'X', `${name}: ${r.line}`);
        assert.deepEqual(r.words.slice(0, 2), ['refused', '1'], `${JSON.stringify(name)} as ${as}: ${r.line}`);
        assert.match(r.line, /is not a file name/);
      }
    // a later valid candidate does not rescue an invalid earlier one
    const r = await lookupRun(['1', d, '../x', '0', 'ok', '0']);
    assert.deepEqual([r.type, ...r.words.slice(0, 2)], ['X', 'refused', '1'], r.line);

    // a directory the user cannot search, looked into as the user: refused with EACCES, the same
    // answer whether the candidate exists there or not (no oracle for root's files); as root: found
    const secret = join(user.base, 'secret');
    mkdirSync(secret, { recursive: true });
    chmodSync(secret, 0o700);
    writeFileSync(join(secret, 'rcpt'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const present = await lookupRun(['1', secret, 'rcpt', '0']);
    const absent = await lookupRun(['1', secret, 'nothing', '0']);
    for (const r of [present, absent]) {
      assert.deepEqual([r.type, ...r.words.slice(0, 2)], ['X', 'refused', '1'], r.line);
      assert.match(r.line, /: EACCES$/);
    }
    const below = await lookupRun(['1', join(secret, 'sub'), 'rcpt', '0']);
    assert.deepEqual([below.type, ...below.words.slice(0, 2)], ['X', 'error', '0'], below.line);
    assert.match(below.line, /EACCES/);
    const t = token();
    s.send(runFields(user, t, { argv: ['/bin/sh', '-c', 'true'], lookup: ['0', secret, 'rcpt', '0'] }));
    assert.equal((await s.result(t)).type, 'R', 'as root, the same lookup finds it');

    // a symlinked script whose real directory is group-writable
    const gw = userDir(join(user.base, 'gw'), user, 0o775);
    writeScript(join(gw, 'rcpt'), `#!/bin/sh\ntouch ${marker}\n`, user);
    const linkDir = userDir(join(user.avengerDir, 'linked'), user);
    rmSync(join(linkDir, 'rcpt'), { force: true });
    symlinkSync(join(gw, 'rcpt'), join(linkDir, 'rcpt'));
    const linked = await lookupRun(['1', linkDir, 'rcpt', '0']);
    assert.deepEqual([linked.type, ...linked.words.slice(0, 2)], ['X', 'refused', '1'], linked.line);
    assert.match(linked.line, /gw is group-writable/);

    // a reason names the path: a newline in it cannot forge a reply line
    const forged = userDir(join(user.base, 'w\nR t0 0 0 0 0 0\nE'), user, 0o777);
    writeScript(join(forged, 'rcpt'), '#!/bin/sh\n', user);
    const one = await lookupRun(['1', forged, 'rcpt', '0']);
    assert.deepEqual([one.type, ...one.words.slice(0, 2)], ['X', 'refused', '1'], one.line);
    assert.match(one.line, / R t0 0 0 0 0 0 E is group-writable$/);
    assert.equal(s.replies.filter((r) => r.token === 't0' || r.type === 'E').length, 0);
  } finally {
    await s.close();
  }
  assert.equal(existsSync(marker), false, 'a refused script ran');
}

// ---- the tests -------------------------------------------------------------------------------------

describe('spawner attacks', { skip }, () => {
  before(() => {
    user = createTempUser();
    marker = join(user.home, 'ran');
  });
  after(() => user?.remove());

  test('malformed frames get E TOKEN …, run nothing, and the spawner still serves a valid run', () =>
    attackMalformed([spawnerPath]));

  test('frames without a usable token or length end the spawner (non-zero, stderr) and run nothing', () =>
    attackFatal([spawnerPath]));

  test('the Spawner class: a spawner ended by a bad frame fails the pending run, and the next run gets a new one', async () => {
    const spawner = new Spawner(DEFAULT_LIMITS);
    try {
      const live = new Set<number>();
      const pending = spawner.run(spec({ args: ['-c', 'sleep 30'], liveGroups: live, timeoutMs: 60_000 }));
      while (live.size === 0) await sleep(10);
      const [pid] = [...live];
      const first = spawnerProcess(spawner);
      first?.stdin?.write('0\n');
      const o = await pending;
      assert.equal(o.kind, 'spawn-error', JSON.stringify(o));
      assert.match((o as { reason: string }).reason, /spawner exited \(code 2\)/);
      assert.deepEqual(await waitForEmptyGroup(pid!), []);
      const next = await spawner.run(spec({ args: ['-c', 'echo again'] }));
      assert.equal(next.kind === 'exited' && next.stdout.toString(), 'again\n', JSON.stringify(next));
      assert.notEqual(spawnerProcess(spawner)?.pid, first?.pid);
    } finally {
      spawner.close();
    }
  });

  test('hostile argv and environment reach the child byte for byte and nothing is executed', () =>
    attackHostileData([spawnerPath]));

  test('lookup names that are not one path component are refused; unsearchable and group-writable places too', () =>
    attackLookupNames([spawnerPath]));
  test("the child's state, read from inside it: descriptors, signals, ids, groups, limits, cwd, environment", async () => {
    // a root-only file open for writing, inherited by the spawner as fd 12: no child may get it
    const rootFile = join(user.base, 'root-only');
    const rootFd = openSync(rootFile, 'w', 0o600);
    const s = new RawSpawner([spawnerPath], rootFd);
    closeSync(rootFd);
    try {
      const run = async (r: RunFrame) => {
        const t = token();
        s.send(runFields(user, t, r));
        const x = await s.result(t);
        assert.equal(x.type, 'R', x.line);
        assert.equal(x.err.toString(), '');
        return x.out.toString();
      };
      // the exec'd program itself (cat) reads its own status and limits
      for (const groups of [[user.supplementaryGid, user.gid], [user.gid], [user.gid, 4242]]) {
        const st = await run({ argv: ['/bin/cat', '/proc/self/status'], groups: groups.join(' ') });
        assert.equal(statusField(st, 'SigIgn'), '0000000000000000');
        assert.equal(statusField(st, 'SigBlk'), '0000000000000000');
        assert.deepEqual(statusField(st, 'Uid').split(/\s+/).map(Number), Array(4).fill(user.uid));
        assert.deepEqual(statusField(st, 'Gid').split(/\s+/).map(Number), Array(4).fill(user.gid));
        const got = statusField(st, 'Groups').split(/\s+/).map(Number);
        assert.deepEqual(
          got.sort((a, b) => a - b),
          [...groups].sort((a, b) => a - b),
        );
      }
      // what the children's reset undoes: the spawner itself ignores SIGPIPE, SIGUSR1 and SIGUSR2
      const own = BigInt(`0x${statusField(readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'), 'SigIgn')}`);
      const ignored = (1n << 12n) | (1n << 9n) | (1n << 11n);
      assert.equal(own & ignored, ignored, 'the spawner ignores SIGPIPE, SIGUSR1, SIGUSR2');

      const limits = await run({ argv: ['/bin/cat', '/proc/self/limits'] });
      const limit = (name: string) =>
        /^(\S+(?: \S+)*)\s{2,}(\S+)\s+(\S+)/m
          .exec(limits.split('\n').find((l) => l.startsWith(name)) ?? '')
          ?.slice(2, 4);
      const want: Array<[string, number]> = [
        ['Max processes', LIMITS[0]],
        ['Max cpu time', LIMITS[1]],
        ['Max data size', LIMITS[2]],
        ['Max file size', LIMITS[3]],
        ['Max open files', LIMITS[4]],
        ['Max core file size', 0],
      ];
      for (const [name, value] of want) assert.deepEqual(limit(name), [String(value), String(value)], name);

      // descriptors and cwd of the shell the spawner exec'd ($$), listed by a child of it
      writeScript(join(user.avengerDir, 'rcpt'), '#!/bin/sh\n', user);
      const lookup = ['1', user.avengerDir, 'rcpt', '0'];
      const cases: Array<[string, Partial<RunFrame>, number[]]> = [
        ['lookup and decision pipe', { lookup }, [0, 1, 2, 3, 4]],
        ['decision pipe only', {}, [0, 1, 2, 3]],
        ['lookup only', { lookup, decision: '0' }, [0, 1, 2, 4]],
        ['neither', { decision: '0' }, [0, 1, 2]],
      ];
      for (const [name, r, fds] of cases) {
        const cwd = userDir(join(user.base, 'work'), user);
        const out = await run({ argv: ['/bin/sh', '-c', 'ls -l /proc/$$/fd; readlink /proc/$$/cwd'], cwd, ...r });
        const links = new Map([...out.matchAll(/ (\d+) -> (.*)$/gm)].map((m) => [Number(m[1]), m[2]!]));
        assert.deepEqual(
          [...links.keys()].sort((a, b) => a - b),
          fds,
          `${name}:\n${out}`,
        );
        assert.equal(links.get(0), '/dev/null', name);
        if (fds.includes(4)) assert.equal(links.get(4), join(user.avengerDir, 'rcpt'), name);
        assert.equal(out.trimEnd().split('\n').at(-1), cwd, name);
      }

      // exactly the given environment, nothing of the spawner's (no PATH unless given)
      assert.equal(await run({ argv: ['/usr/bin/env'], env: ['ONLY=1'] }), 'ONLY=1\n');
      assert.equal(await run({ argv: ['/usr/bin/env'] }), '');
    } finally {
      await s.close();
    }
  });

  test("a spawner stuck opening a run's stdin (a FIFO without a writer) is killed at the deadline and replaced", async () => {
    const fifo = join(user.base, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const spawner = new Spawner(DEFAULT_LIMITS);
    try {
      const live = new Set<number>();
      const sleeping = spawner.run(spec({ args: ['-c', 'sleep 30'], liveGroups: live, timeoutMs: 60_000 }));
      while (live.size === 0) await sleep(10);
      const [pid] = [...live];
      const first = spawnerProcess(spawner)?.pid;
      const t0 = Date.now();
      const stuck = await spawner.run(spec({ args: ['-c', `touch ${marker}`], stdinFd: fd, timeoutMs: 500 }));
      const tookMs = Date.now() - t0;
      assert.equal(stuck.kind, 'spawn-error', JSON.stringify(stuck));
      assert.match((stuck as { reason: string }).reason, /spawner stuck/);
      assert.ok(tookMs < 5000, `settled after ${tookMs} ms`);
      const other = await sleeping;
      assert.equal(other.kind, 'spawn-error', JSON.stringify(other));
      assert.match((other as { reason: string }).reason, /spawner stuck/);
      assert.deepEqual(await waitForEmptyGroup(pid!), [], 'the sleep 30 group is gone');
      const next = await spawner.run(spec({ args: ['-c', 'echo fresh'] }));
      assert.equal(next.kind === 'exited' && next.stdout.toString(), 'fresh\n', JSON.stringify(next));
      assert.notEqual(spawnerProcess(spawner)?.pid, first);
      assert.equal(existsSync(marker), false);
    } finally {
      spawner.close();
      closeSync(fd);
    }
  });

  test(
    'under AddressSanitizer and UndefinedBehaviorSanitizer: the attacks above and 50 normal runs, no report',
    { timeout: 600_000 },
    async () => {
      const dir = mkdtempSync('/tmp/asmtpd-spawner-asan-');
      chmodSync(dir, 0o755);
      const logs = join(dir, 'logs');
      mkdirSync(logs);
      chmodSync(logs, 0o1777); // a report from a child after its switch to the user lands here too
      try {
        const bin = join(dir, 'spawner');
        // scripts/build-spawner.mjs's flags without -O2 and -D_FORTIFY_SOURCE (which hides accesses from ASan)
        const flags = [
          '-std=gnu11',
          '-O1',
          '-g',
          '-Wall',
          '-Wextra',
          '-Wno-format-truncation',
          '-fstack-protector-strong',
        ];
        const sanitize = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fPIE', '-pie'];
        execFileSync('cc', [...flags, ...sanitize, '-o', bin, `${spawnerPath}.c`], { stdio: 'inherit' });
        const help = spawnSync(bin, [], { env: { ASAN_OPTIONS: 'help=1' } }).stderr.toString();
        assert.match(help, /Available flags for AddressSanitizer/, 'the binary carries ASan');
        const asan = `log_path=${logs}/asan:strict_string_checks=1:detect_stack_use_after_return=1`;
        const ubsan = `UBSAN_OPTIONS=log_path=${logs}/ubsan:print_stacktrace=1`;
        const command = ['/usr/bin/env', `ASAN_OPTIONS=${asan}:detect_leaks=1`, ubsan, bin];
        await attackMalformed(command);
        // no leak check here: these end the spawner from inside handle_frame (exit(2)), and at -O1
        // LeakSanitizer no longer sees the frame's field array on the stack: 8 bytes "leaked" at exit
        await attackFatal(['/usr/bin/env', `ASAN_OPTIONS=${asan}:detect_leaks=0`, ubsan, bin]);
        await attackHostileData(command);
        await attackLookupNames(command);

        writeScript(join(user.avengerDir, 'rcpt'), '#!/bin/sh\necho "script $1"; printf accept >&3\n', user);
        const spawner = new Spawner(DEFAULT_LIMITS, command[0], command.slice(1));
        try {
          for (let batch = 0; batch < 5; batch++) {
            const runs = Array.from({ length: 10 }, (_, i) => {
              const n = batch * 10 + i;
              const withLookup = n % 2 === 0;
              const big = n % 3 === 0;
              const lookup = withLookup
                ? { asUser: true, dir: user.avengerDir, candidates: [{ name: 'rcpt', extraEnv: ['X=1'] }] }
                : undefined;
              const script = big ? 'head -c 200000 /dev/zero; echo done >&2' : `echo run ${n}`;
              const args = withLookup ? [] : ['-c', script];
              const maxOutputBytes = big ? 1000 : 65536;
              const run = spec({
                args,
                lookup,
                decisionChannel: n % 4 !== 1,
                maxOutputBytes,
                env: { PATH: '/usr/bin:/bin' },
              });
              return spawner.run(run).then((o) => ({ n, withLookup, big, o }));
            });
            for (const { n, withLookup, big, o } of await Promise.all(runs)) {
              assert.equal(o.kind, 'exited', JSON.stringify(o));
              if (o.kind !== 'exited') continue;
              assert.equal(o.exitCode, 0, `run ${n}: ${o.stderr.toString()}`);
              if (withLookup) assert.equal(o.stdout.toString(), 'script \n');
              else if (big) assert.deepEqual([o.stdout.length, o.outputTruncated], [1000, true], `run ${n}`);
              else assert.equal(o.stdout.toString(), `run ${n}\n`);
            }
          }
        } finally {
          // wait for its exit (LeakSanitizer reports then); an idle Spawner unrefs the process, so ref it
          const proc = spawnerProcess(spawner);
          proc?.ref();
          const gone = proc && proc.exitCode === null ? new Promise((resolve) => proc.once('exit', resolve)) : null;
          spawner.close();
          await gone;
        }
        const reports = readdirSync(logs).map((f) => `${f}:\n${readFileSync(join(logs, f), 'utf8')}`);
        assert.deepEqual(reports, [], reports.join('\n'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

function spec(extra: Partial<PrivilegedChildSpec>): PrivilegedChildSpec {
  return {
    file: '/bin/sh',
    args: ['-c', 'true'],
    env: {},
    cwd: user.home,
    decisionChannel: true,
    timeoutMs: 10_000,
    maxOutputBytes: 65536,
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    ...extra,
  };
}
