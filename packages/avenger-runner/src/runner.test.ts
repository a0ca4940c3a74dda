// End-to-end tests of the runner process as root: real temporary users, real scripts, a spool
// directory owned by a stand-in for the SMTP process's account.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startRunner, type RunnerClient } from './client.js';
import { rootOnlyFile, surelyMissing } from './runner.js';
import { DEFAULT_LIMITS, type RcptRequest, type RunnerSettings, type RunResult } from './protocol.js';
import {
  createSpoolDirectory,
  createTempUser,
  isRoot,
  TEST_ENV_NAMES,
  waitForEmptyGroup,
  type TempUser,
} from './testing/users.js';

type Ran = Extract<RunResult, { kind: 'ran' }>;

describe('avenger runner as root', { skip: !isRoot && 'needs root (creates users)' }, () => {
  let user: TempUser;
  let av: TempUser;
  let smtp: TempUser;
  let spool: string;
  let etc: string;
  let settings: RunnerSettings;
  let runner: RunnerClient;
  const runnerLog: string[] = [];

  before(async () => {
    [user, av, smtp] = [createTempUser(), createTempUser(), createTempUser()];
    spool = createSpoolDirectory(smtp);
    etc = join(av.base, 'etc');
    mkdirSync(etc, { mode: 0o755 });
    chmodSync(etc, 0o755);
    settings = {
      etcDir: etc,
      avengerUser: av.name,
      passwdFile: null,
      spoolDir: spool,
      daemonUid: smtp.uid,
      deniedUids: [],
      envNames: TEST_ENV_NAMES,
      fixedEnv: { ASMTPD_NODE: '/fixed/node' },
      toolsDir: null,
      limits: DEFAULT_LIMITS,
    };
    runner = await startRunner({ settings, onLog: (line) => runnerLog.push(line) });
  });
  after(async () => {
    await runner?.close();
    for (const u of [user, av, smtp]) u?.remove();
  });

  function writeScript(
    name: string,
    body: string,
    mode = 0o644,
    owner: { uid: number; gid: number; avengerDir: string } = user,
  ): string {
    const path = join(owner.avengerDir, name);
    writeFileSync(path, body);
    chownSync(path, owner.uid, owner.gid);
    chmodSync(path, mode);
    return path;
  }

  function rcpt(
    candidates: string[],
    env: Record<string, string> = {},
    timeoutMs = 10_000,
    account = user.name,
  ): RcptRequest {
    return { kind: 'rcpt', scope: 'user', account, candidates, env, timeoutMs };
  }

  async function ran(request: Parameters<RunnerClient['run']>[0]): Promise<Ran> {
    const r = await runner.run(request);
    assert.equal(r.kind, 'ran', JSON.stringify(r));
    return r as Ran;
  }

  /** A message file in the spool directory, owned by the SMTP account (as the daemon writes it). */
  function writeSpool(name: string, content: string, owner: { uid: number; gid: number } = smtp): string {
    const path = join(spool, name);
    writeFileSync(path, content, { mode: 0o600 });
    chownSync(path, owner.uid, owner.gid);
    return path;
  }

  /** The token of a bodytest decision for `argv` (run through a script of the user's). */
  async function grant(argv: string[]): Promise<string> {
    const name = `rcpt+bt${Math.random().toString(16).slice(2, 8)}`;
    writeScript(name, `bodytest ${argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')}\n`);
    const r = await ran(rcpt([name], { SENDER: 'from@rcpt.example' }));
    assert.deepEqual(r.decision, { verb: 'bodytest', args: argv });
    assert.match(r.bodyTest ?? '', /^[0-9a-f]{32}$/);
    return r.bodyTest!;
  }

  test('runner reports itself privileged', () => assert.equal(runner.privileged, true));

  test('each decision function', async () => {
    const cases: Array<[string, string, Record<string, string>, unknown]> = [
      ['accept', 'accept', {}, { verb: 'accept', args: [] }],
      ['accept-text', 'accept "fine by me"', {}, { verb: 'accept', args: ['fine by me'] }],
      ['reject', 'reject 550 5.7.1 go  away', {}, { verb: 'reject', args: ['550 5.7.1 go away'] }],
      [
        'defer',
        'defer "451 4.7.1 greylisted,  try later"',
        {},
        { verb: 'defer', args: ['451 4.7.1 greylisted,  try later'] },
      ],
      ['redirect', 'redirect avenger+grey@example.org', {}, { verb: 'redirect', args: ['avenger+grey@example.org'] }],
      ['bodytest', 'bodytest spamc -c "a b"', {}, { verb: 'bodytest', args: ['spamc', '-c', 'a b'] }],
      [
        'errcheck5',
        'errcheck; accept',
        { MAIL_ERROR: '550 5.7.1 listed' },
        { verb: 'reject', args: ['550 5.7.1 listed'] },
      ],
      ['errcheck4', 'errcheck; accept', { MAIL_ERROR: '451 4.4.3 dns' }, { verb: 'defer', args: ['451 4.4.3 dns'] }],
      ['errcheck-unset', 'errcheck; accept', {}, { verb: 'accept', args: [] }],
      ['errcheck-empty', 'errcheck; accept', { MAIL_ERROR: '' }, { verb: 'accept', args: [] }],
      ['ends-script', 'reject no\necho after >&2\naccept', {}, { verb: 'reject', args: ['no'] }],
      ['subshell-first-wins', '(defer first)\naccept', {}, { verb: 'defer', args: ['first'] }],
    ];
    await Promise.all(
      cases.map(async ([name, body, env, decision]) => {
        writeScript(`rcpt+${name}`, `${body}\n`);
        const r = await ran(rcpt([`rcpt+${name}`], env));
        assert.deepEqual(r.decision, decision, name);
        assert.equal(r.exitCode, 0, name);
        assert.equal(r.stderr, '', name);
        assert.equal(r.bodyTest !== undefined, name === 'bodytest', name);
      }),
    );
  });

  test('no decision, non-zero exit, crash and a garbled decision are reported faithfully', async () => {
    writeScript('rcpt+none', 'echo thinking\n');
    let r = await ran(rcpt(['rcpt+none']));
    assert.deepEqual([r.decision, r.exitCode, r.signal, r.stdout], [null, 0, null, 'thinking\n']);
    writeScript('rcpt+fail', 'echo oops >&2; exit 3\n');
    r = await ran(rcpt(['rcpt+fail']));
    assert.deepEqual([r.decision, r.exitCode, r.stderr], [null, 3, 'oops\n']);
    writeScript('rcpt+crash', 'kill -SEGV $$\n');
    r = await ran(rcpt(['rcpt+crash']));
    assert.deepEqual([r.decision, r.exitCode, r.signal], [null, null, 'SIGSEGV']);
    writeScript('rcpt+garble', "printf 'accept' >&3; exit 0\n");
    r = await ran(rcpt(['rcpt+garble']));
    assert.equal(r.decision, null);
    assert.equal(r.decisionError, 'truncated decision record');
    writeScript('rcpt+syntax', 'if then fi\n');
    r = await ran(rcpt(['rcpt+syntax']));
    assert.notEqual(r.exitCode, 0);
    assert.equal(r.decision, null);
  });

  test('hostile values execute nothing; control characters (CR, LF, NUL) arrive as ?, the rest byte-exact', async () => {
    const marker = join(user.base, 'pwned');
    const hostile = [
      `$(touch ${marker})@a.example`,
      `\`touch ${marker}\`@a.example`,
      `a;touch ${marker}@a.example`,
      `a|touch ${marker}`,
      `"quoted" 'single' and  spaces@a.example`,
      `new\nline\r\n@a.example`,
      `nul\0byte@a.example`,
      `\${HOME}\\n%s*?[a]@a.example`,
      `-n`,
      `ünïcødé@ä.example`,
    ];
    writeScript('rcpt+echo', 'printf "%s\\0" "$SENDER" "$RECIPIENT"\naccept "$SENDER"\n');
    for (const value of hostile) {
      const clean = value.replace(/[\x00-\x1f]/g, '?');
      const r = await ran(rcpt(['rcpt+echo'], { SENDER: value, RECIPIENT: value }));
      assert.equal(r.stdout, `${clean}\0${clean}\0`);
      assert.deepEqual(r.decision, { verb: 'accept', args: [clean] });
    }
    assert.equal(existsSync(marker), false, 'nothing was executed');
  });

  test("the script runs as the user: uid, gid, supplementary groups, umask 077, cwd home, the runner's environment, only fds 0-4", async () => {
    writeScript(
      'rcpt+whoami',
      [
        'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"',
        'grep -E "^(Uid|Gid|CapEff|CapPrm):" /proc/self/status | tr -s "\\t " " "',
        'echo "umask=$(umask) cwd=$(pwd) zero=$0"',
        'env | sort | tr "\\n" " "; echo',
        'ls /proc/self/fd | sort -n | tr "\\n" " "; echo',
        'accept',
      ].join('\n'),
    );
    const r = await ran(rcpt(['rcpt+whoami'], { SENDER: 's@x' }));
    const lines = r.stdout.split('\n');
    const [idLine, groupList = ''] = (lines[0] ?? '').split(' groups=');
    assert.equal(idLine, `uid=${user.uid} gid=${user.gid}`);
    assert.deepEqual(groupList.split(' ').map(Number).sort(), [...user.groups].sort());
    assert.equal(lines[1], `Uid: ${user.uid} ${user.uid} ${user.uid} ${user.uid}`);
    assert.equal(lines[2], `Gid: ${user.gid} ${user.gid} ${user.gid} ${user.gid}`);
    assert.equal(lines[3], 'CapPrm: 0000000000000000');
    assert.equal(lines[4], 'CapEff: 0000000000000000');
    assert.equal(lines[5], `umask=0077 cwd=${user.home} zero=${user.avengerDir}/rcpt+whoami`);
    const env = (lines[6] ?? '')
      .trim()
      .split(' ')
      .filter((v) => !v.startsWith('PWD=') && !v.startsWith('OLDPWD='));
    assert.deepEqual(env, [
      'ASMTPD_NODE=/fixed/node',
      `AVENGER_USER=${av.name}`,
      `HOME=${user.home}`,
      'PATH=/usr/local/bin:/usr/bin:/bin',
      'SENDER=s@x',
      'TMPDIR=/tmp',
      `USER=${user.name}`,
    ]);
    // ls itself adds one descriptor for the directory it reads.
    assert.match(lines[7] ?? '', /^0 1 2 3 4 \d+ $/);
    assert.deepEqual([r.uid, r.user], [user.uid, user.name]);
  });

  test("a request cannot set PATH, USER, HOME, LD_PRELOAD, BASH_ENV or the helpers' program: only listed fact names pass", async () => {
    writeScript(
      'rcpt+env',
      'echo "$PATH|$USER|$HOME|${LD_PRELOAD-unset}|${BASH_ENV-unset}|$ASMTPD_NODE|${ASMTPD_DNS-unset}"; accept\n',
    );
    const r = await ran(
      rcpt(['rcpt+env'], {
        PATH: `${user.home}:/tmp`,
        USER: 'root',
        HOME: '/root',
        LD_PRELOAD: '/tmp/evil.so',
        BASH_ENV: '/tmp/evil.sh',
        ASMTPD_NODE: '/tmp/evil',
        ASMTPD_DNS: '{"kind":"system"}',
      }),
    );
    assert.equal(
      r.stdout,
      `/usr/local/bin:/usr/bin:/bin|${user.name}|${user.home}|unset|unset|/fixed/node|{"kind":"system"}\n`,
    );
  });

  test('children get default signal dispositions, no blocked signals, and the resource limits', async () => {
    writeScript(
      'rcpt+limits',
      [
        'grep -E "^(SigBlk|SigIgn):" /proc/self/status | tr -s "\\t " " "',
        'grep -E "^Max (cpu time|data size|file size|open files|processes|core file size)" /proc/self/limits',
        'accept',
      ].join('\n'),
    );
    const r = await ran(rcpt(['rcpt+limits']));
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(
      lines.slice(0, 2),
      ['SigBlk: 0000000000000000', 'SigIgn: 0000000000000000'],
      'SIGPIPE is not ignored in scripts',
    );
    const l = DEFAULT_LIMITS;
    const limits = Object.fromEntries(
      lines.slice(2).map((line) => {
        const [, name = '', soft, hard] = /^Max (.+?)\s{2,}(\S+)\s+(\S+)/.exec(line) ?? [];
        return [name, `${soft}/${hard}`];
      }),
    );
    assert.deepEqual(limits, {
      'core file size': '0/0',
      'cpu time': `${l.cpuSeconds}/${l.cpuSeconds}`,
      'data size': `${l.dataBytes}/${l.dataBytes}`,
      'file size': `${l.fileBytes}/${l.fileBytes}`,
      'open files': `${l.openFiles}/${l.openFiles}`,
      processes: `${l.processes}/${l.processes}`,
    });
  });

  test('the runner resolves accounts itself: unknown, system, nobody, the SMTP account and group-0 accounts run nothing', async () => {
    const marker = join(user.base, 'ran-as-someone');
    const refusedFor = async (account: string): Promise<string> => {
      const r = await runner.run(rcpt(['rcpt'], {}, 5000, account));
      assert.equal(r.kind, 'refused', `${account}: ${JSON.stringify(r)}`);
      return r.kind === 'refused' ? r.reason : '';
    };
    assert.match(await refusedFor('no-such-account-x'), /no account/);
    assert.match(await refusedFor('daemon'), /system account/);
    assert.match(await refusedFor('nobody'), /nobody/);
    assert.match(await refusedFor(smtp.name), /asmtpd's own/);
    const wheel = createTempUser();
    try {
      execFileSync('usermod', ['-aG', 'root', wheel.name]);
      writeScript('rcpt', `touch ${marker}; accept\n`, 0o644, wheel);
      assert.match(await refusedFor(wheel.name), /group 0/);
    } finally {
      wheel.remove();
    }
    assert.equal(existsSync(marker), false);
    assert.ok(
      runnerLog.some((l) => /refused rcpt request: account nobody/.test(l)),
      'the runner logs request-level refusals itself',
    );
  });

  test('system scripts: EtcDir as AvengerUser; only unknown, relay and default', async () => {
    writeFileSync(join(etc, 'unknown'), 'accept "$(id -u) $USER $HOME"\n', { mode: 0o644 });
    const r = await ran({ kind: 'rcpt', scope: 'system', candidates: ['unknown'], env: {}, timeoutMs: 5000 });
    assert.deepEqual(r.decision?.args, [`${av.uid} ${av.name} ${av.home}`]);
    assert.equal(r.script, join(etc, 'unknown'));
    for (const candidates of [['rcpt'], ['../unknown'], ['unknown', 'passwd']]) {
      const bad = await runner.run({ kind: 'rcpt', scope: 'system', candidates, env: {}, timeoutMs: 5000 });
      assert.equal(
        bad.kind === 'error' && /candidates must be unknown, relay or default/.test(bad.reason),
        true,
        JSON.stringify(bad),
      );
    }
  });

  test("~/.avenger is looked at with the user's rights: a link into a root-only directory reveals nothing and runs nothing", async () => {
    const marker = join(user.base, 'root-script-ran');
    const secret = join(user.base, 'secret');
    const empty = join(user.base, 'secret-empty');
    for (const d of [secret, empty]) {
      mkdirSync(d, { mode: 0o700 });
      chmodSync(d, 0o700);
    }
    writeFileSync(join(secret, 'rcpt'), `touch ${marker}; accept\n`, { mode: 0o755 });
    const saved = `${user.avengerDir}.saved`;
    renameSync(user.avengerDir, saved);
    try {
      const answers: RunResult[] = [];
      for (const target of [secret, empty]) {
        symlinkSync(target, user.avengerDir);
        answers.push(await runner.run(rcpt(['rcpt'])));
        rmSync(user.avengerDir);
      }
      assert.equal(answers[0]?.kind, 'refused', JSON.stringify(answers[0]));
      assert.deepEqual(answers[0], answers[1], 'the same answer whether the root-only file exists or not');
      assert.match(JSON.stringify(answers[0]), /EACCES/);
    } finally {
      renameSync(saved, user.avengerDir);
    }
    assert.equal(existsSync(marker), false);
  });

  test("no ~/.avenger: none at once when the way to the home is root's; otherwise the spawner looks (same answer)", async () => {
    const bare = createTempUser();
    try {
      rmSync(bare.avengerDir, { recursive: true });
      const r = await runner.run(rcpt(['rcpt+x', 'rcpt+default'], {}, 5000, bare.name));
      assert.deepEqual(r, { kind: 'none', tried: [`${bare.avengerDir}/rcpt+x`, `${bare.avengerDir}/rcpt+default`] });
      assert.equal(surelyMissing(bare.avengerDir), true, 'answered without the spawner');
      // a home whose parent anyone may write (not sticky): its name could be swapped — not sure;
      // sticky like /tmp with a home of root's: sure (answers are cached per home: fresh names)
      for (const d of ['h1', 'h2', 'h3']) mkdirSync(join(bare.base, d), { mode: 0o755 });
      chmodSync(bare.base, 0o777);
      assert.equal(surelyMissing(join(bare.base, 'h1', '.avenger')), false);
      chmodSync(bare.base, 0o1777);
      assert.equal(surelyMissing(join(bare.base, 'h2', '.avenger')), true);
      chmodSync(bare.base, 0o755);
      assert.equal(surelyMissing(join(bare.base, 'h3', '.avenger')), true);
      mkdirSync(bare.avengerDir);
      assert.equal(surelyMissing(bare.avengerDir), false, 'an existing ~/.avenger is for the spawner');
      rmSync(bare.avengerDir, { recursive: true });
      symlinkSync('/root', bare.avengerDir);
      assert.equal(surelyMissing(bare.avengerDir), false, 'a link is never followed by root: the spawner looks');
    } finally {
      bare.remove();
    }
  });

  test('unsafe scripts and directories are refused with a reason; nothing runs', async () => {
    const marker = join(user.home, 'ran-anyway');
    writeScript('rcpt+gw', `touch ${marker}; accept\n`, 0o664);
    let r = await runner.run(rcpt(['rcpt+gw']));
    assert.deepEqual(r, {
      kind: 'refused',
      tried: [`${user.avengerDir}/rcpt+gw`],
      script: `${user.avengerDir}/rcpt+gw`,
      reason: `${user.avengerDir}/rcpt+gw is group-writable`,
    });
    mkdirSync(join(user.avengerDir, 'rcpt+dir'));
    r = await runner.run(rcpt(['rcpt+dir']));
    assert.equal(r.kind === 'refused' && r.reason, `${user.avengerDir}/rcpt+dir is not a regular file`);
    writeScript('rcpt+foreign', `touch ${marker}; accept\n`);
    chownSync(join(user.avengerDir, 'rcpt+foreign'), 65534, 65534);
    r = await runner.run(rcpt(['rcpt+foreign']));
    assert.equal(
      r.kind === 'refused' && r.reason,
      `${user.avengerDir}/rcpt+foreign is owned by uid 65534, not ${user.uid} or root`,
    );
    chmodSync(user.avengerDir, 0o775);
    try {
      r = await runner.run(rcpt(['rcpt+whoami']));
      assert.equal(r.kind === 'refused' && r.reason, `${user.avengerDir} is group-writable`);
    } finally {
      chmodSync(user.avengerDir, 0o755);
    }
    assert.equal(existsSync(marker), false);
  });

  test('a symlinked script is followed when its real directory is safe; a FIFO is refused without blocking', async () => {
    const shared = join(user.home, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, user.uid, user.gid);
    writeFileSync(join(shared, 'common'), 'accept common\n', { mode: 0o644 });
    chownSync(join(shared, 'common'), user.uid, user.gid);
    symlinkSync('../shared/common', join(user.avengerDir, 'rcpt+linked'));
    const r = await ran(rcpt(['rcpt+linked']));
    assert.deepEqual(r.decision?.args, ['common']);
    chmodSync(shared, 0o777);
    try {
      const unsafe = await runner.run(rcpt(['rcpt+linked']));
      assert.equal(unsafe.kind === 'refused' && unsafe.reason, `${shared} is group-writable`);
    } finally {
      chmodSync(shared, 0o755);
    }
    execFileSync('mkfifo', [join(user.avengerDir, 'rcpt+fifo')]);
    chownSync(join(user.avengerDir, 'rcpt+fifo'), user.uid, user.gid);
    const fifo = await runner.run(rcpt(['rcpt+fifo'], {}, 3000));
    assert.equal(fifo.kind === 'refused' && fifo.reason, `${user.avengerDir}/rcpt+fifo is not a regular file`);
  });

  test('lookup order over candidates; absent → none; only rcpt file names', async () => {
    writeScript('rcpt+a+default', 'accept a-default\n');
    writeScript('rcpt+default', 'accept default\n');
    let r = await ran(rcpt(['rcpt+a+b', 'rcpt+a+default', 'rcpt+default']));
    assert.deepEqual(r.decision?.args, ['a-default']);
    assert.deepEqual(r.tried, [`${user.avengerDir}/rcpt+a+b`, `${user.avengerDir}/rcpt+a+default`]);
    assert.equal(r.script, `${user.avengerDir}/rcpt+a+default`);
    r = await ran(rcpt(['rcpt+x+y', 'rcpt+x+default', 'rcpt+default']));
    assert.deepEqual(r.decision?.args, ['default']);
    writeScript('rcpt+dflt', 'accept "DEFAULT=${DEFAULT-unset} PATH=$PATH"\n');
    const withEnv = {
      ...rcpt(['rcpt+dflt+x', 'rcpt+dflt']),
      candidateEnv: { 'rcpt+dflt+x': { DEFAULT: 'no' }, 'rcpt+dflt': { DEFAULT: 'x', PATH: '/evil' } },
    };
    r = await ran(withEnv);
    assert.deepEqual(
      r.decision?.args,
      ['DEFAULT=x PATH=/usr/local/bin:/usr/bin:/bin'],
      'candidateEnv of the file found, PATH still fixed',
    );
    const none = await runner.run(rcpt(['rcpt+q']));
    assert.deepEqual(none, { kind: 'none', tried: [`${user.avengerDir}/rcpt+q`] });
    for (const name of ['../rcpt+default', '.rcpt', 'local', 'rcptx', '.macpass']) {
      const bad = await runner.run(rcpt([name]));
      assert.equal(bad.kind === 'error' && /candidates must be rcpt file names/.test(bad.reason), true, name);
    }
  });

  test('timeout kills the whole process group', async () => {
    writeScript('rcpt+slow', 'echo $$ > "$HOME/slow.pgid"\nsleep 1000 &\nsleep 1000 </dev/null\naccept\n');
    const r = await ran(rcpt(['rcpt+slow'], {}, 500));
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.decision, null);
    assert.ok(r.durationMs < 5000, `took ${r.durationMs} ms`);
    const pgid = Number(readFileSync(join(user.home, 'slow.pgid'), 'utf8'));
    assert.deepEqual(await waitForEmptyGroup(pgid), []);
  });

  test('background jobs do not outlive a script that decided', async () => {
    writeScript(
      'rcpt+bg',
      'echo $$ > "$HOME/bg.pgid"\n(sleep 1000 >/dev/null 2>&1 3>&- &)\nsleep 1000 >/dev/null 2>&1 3>&- &\naccept\n',
    );
    const r = await ran(rcpt(['rcpt+bg']));
    assert.deepEqual(r.decision, { verb: 'accept', args: [] });
    assert.equal(r.timedOut, false);
    const pgid = Number(readFileSync(join(user.home, 'bg.pgid'), 'utf8'));
    assert.deepEqual(await waitForEmptyGroup(pgid), []);
  });

  test('body test: the granted argv, as the user, with the rcpt environment and a seekable stdin the user cannot open by path', async () => {
    writeSpool('MSG1', 'Subject: hi\r\n\r\nbody\r\n');
    const seek = await grant([
      'perl',
      '-e',
      'my $a = join "", <STDIN>; seek(STDIN, 0, 0) or die "seek: $!"; my $b = join "", <STDIN>; print length($a), " ", length($b), " $< $ENV{SENDER} $ENV{USER}\\n"',
    ]);
    const twice = await ran({ kind: 'bodytest', token: seek, spool: 'MSG1', timeoutMs: 10_000 });
    assert.equal(twice.stdout, `21 21 ${user.uid} from@rcpt.example ${user.name}\n`);
    assert.deepEqual([twice.uid, twice.user], [user.uid, user.name]);
    const byPath = await ran({
      kind: 'bodytest',
      token: await grant(['cat', join(spool, 'MSG1')]),
      spool: 'MSG1',
      timeoutMs: 10_000,
    });
    assert.equal(byPath.exitCode, 1);
    assert.match(byPath.stderr, /Permission denied/);
    for (const code of [0, 99, 100, 111, 2]) {
      const r = await ran({
        kind: 'bodytest',
        token: await grant(['sh', '-c', `head -n1; exit ${code}`]),
        spool: 'MSG1',
        timeoutMs: 10_000,
      });
      assert.equal(r.exitCode, code);
      assert.equal(r.stdout, 'Subject: hi\r\n');
    }
    const literal = await ran({
      kind: 'bodytest',
      token: await grant(['printf', '%s|', '$(id)', '`id`', 'a;b']),
      spool: 'MSG1',
      timeoutMs: 10_000,
    });
    assert.equal(literal.stdout, '$(id)|`id`|a;b|');
    const missing = await ran({
      kind: 'bodytest',
      token: await grant(['no-such-command-here']),
      spool: 'MSG1',
      timeoutMs: 10_000,
    });
    assert.equal(missing.exitCode, 127);
  });

  test("body test: a token the runner did not issue, and spool files that are links, someone else's, FIFOs or missing, are refused without a path", async () => {
    const marker = join(user.base, 'bodytest-ran');
    const token = await grant(['sh', '-c', `cat > ${marker}.out; touch ${marker}`]);
    const forged = await runner.run({ kind: 'bodytest', token: 'f'.repeat(32), spool: 'MSG2', timeoutMs: 5000 });
    assert.deepEqual(forged, {
      kind: 'refused',
      tried: [],
      script: null,
      reason: 'unknown or expired body-test token',
    });
    const secret = join(user.base, 'root-only');
    writeFileSync(secret, 'root:secret\n', { mode: 0o600 });
    // what a process running as the SMTP account can plant in its spool directory
    const asSmtp = (cmd: string): void =>
      void execFileSync('setpriv', [`--reuid=${smtp.uid}`, `--regid=${smtp.gid}`, '--clear-groups', 'sh', '-c', cmd], {
        cwd: '/',
      });
    asSmtp(
      `ln -s ${secret} ${spool}/LINK && mkfifo ${spool}/FIFO && echo mine > ${spool}/OWN && ln ${spool}/OWN ${spool}/HARD`,
    );
    writeSpool('USERS', "not the daemon's\n", user);
    const cases: Array<[string, RegExp]> = [
      ['LINK', /cannot be opened \(ELOOP\)/],
      ['FIFO', /not a regular file/],
      ['OWN', /one link/],
      ['USERS', /owned by the SMTP process/],
      ['NOPE', /cannot be opened \(ENOENT\)/],
    ];
    for (const [name, reason] of cases) {
      const r = await runner.run({ kind: 'bodytest', token, spool: name, timeoutMs: 5000 });
      assert.equal(r.kind, 'refused', name);
      if (r.kind === 'refused') {
        assert.match(r.reason, reason, name);
        assert.doesNotMatch(r.reason, /\//, `${name}: the reason names no path`);
      }
    }
    for (const spoolName of ['../root-only', '/etc/shadow', '.hidden']) {
      const r = await runner.run({ kind: 'bodytest', token, spool: spoolName, timeoutMs: 5000 });
      assert.equal(r.kind === 'error' && /spool must be a file name/.test(r.reason), true, spoolName);
    }
    assert.equal(existsSync(marker), false, 'no refused body test ran');
  });

  test("the working directory is entered with the user's rights, after the switch", async () => {
    writeFileSync(join(etc, 'relay'), 'accept "$(pwd)"\n', { mode: 0o644 });
    chownSync(av.home, 0, 0);
    try {
      const r = await ran({ kind: 'rcpt', scope: 'system', candidates: ['relay'], env: {}, timeoutMs: 5000 });
      assert.equal(r.exitCode, 126);
      assert.match(r.stderr, /cannot chdir to .*Permission denied/);
      assert.equal(r.decision, null);
    } finally {
      chownSync(av.home, av.uid, av.gid);
    }
  });

  test('huge output is capped without hanging', async () => {
    writeScript('rcpt+loud', 'head -c 10000000 /dev/zero; head -c 3000000 /dev/zero >&2; accept\n');
    const r = await ran(rcpt(['rcpt+loud']));
    assert.equal(r.stdout.length, 65536);
    assert.equal(r.stderr.length, 65536);
    assert.equal(r.outputTruncated, true);
    assert.deepEqual(r.decision, { verb: 'accept', args: [] });
  });

  test('many concurrent requests are matched to their results', async () => {
    writeScript('rcpt+n', 'accept "$N"\n');
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => ran(rcpt(['rcpt+n'], { N: String(i) }))));
    results.forEach((r, i) => assert.deepEqual(r.decision, { verb: 'accept', args: [String(i)] }));
  });

  test('requests in the old form (uid, gid, groups, dir, stdinPath, command) and other bad requests get an error, not a crash', async () => {
    const old = [
      { ...rcpt(['rcpt']), uid: 65534, gid: 0, groups: [0, 6, 42] },
      { ...rcpt(['rcpt']), dir: '/root/.avenger' },
      {
        kind: 'command',
        argv: ['id'],
        uid: 65534,
        gid: 0,
        groups: [0],
        user: 'nobody',
        home: '/',
        env: {},
        timeoutMs: 1000,
        stdinPath: '/etc/shadow',
      },
      { ...rcpt(['rcpt']), env: { 'BAD NAME': 'x' } },
      { kind: 'rcpt', scope: 'user', candidates: ['rcpt'], env: {}, timeoutMs: 1000 },
    ];
    for (const request of old) {
      const r = await runner.run(request as unknown as RcptRequest);
      assert.equal(r.kind, 'error', JSON.stringify(request));
    }
    assert.equal(runner.alive, true);
  });
});

describe('a uid-0 account', { skip: !isRoot && 'needs root (creates users)' }, () => {
  test('its scripts run as AvengerUser, in its own home, looked up by root', async () => {
    const av = createTempUser();
    const smtp = createTempUser();
    const rootHome = join(av.base, 'toor');
    mkdirSync(join(rootHome, '.avenger'), { recursive: true, mode: 0o755 });
    chmodSync(rootHome, 0o755);
    writeFileSync(join(rootHome, '.avenger', 'rcpt'), 'accept "$(id -u) $USER $HOME"\n', { mode: 0o644 });
    const passwd = join(av.base, 'passwd');
    writeFileSync(passwd, `toor:x:0:0::${rootHome}:/bin/sh\n`);
    const runner = await startRunner({
      settings: {
        etcDir: av.base,
        avengerUser: av.name,
        passwdFile: passwd,
        spoolDir: null,
        daemonUid: smtp.uid,
        deniedUids: [],
        envNames: TEST_ENV_NAMES,
        fixedEnv: {},
        toolsDir: null,
        limits: DEFAULT_LIMITS,
      },
      onLog: () => {},
    });
    try {
      const r = await runner.run({
        kind: 'rcpt',
        scope: 'user',
        account: 'toor',
        candidates: ['rcpt'],
        env: {},
        timeoutMs: 5000,
      });
      assert.equal(r.kind, 'ran', JSON.stringify(r));
      if (r.kind === 'ran') {
        assert.deepEqual(
          r.decision?.args,
          [`${av.uid} ${av.name} ${av.home}`],
          'AvengerUser runs it (from the system database behind PasswdFile)',
        );
        assert.equal(r.uid, av.uid);
      }
      const bodyTests = await runner.run({ kind: 'bodytest', token: '0'.repeat(32), spool: 'X', timeoutMs: 5000 });
      assert.equal(bodyTests.kind, 'refused');
    } finally {
      await runner.close();
      av.remove();
      smtp.remove();
    }
  });
});

describe('the spawner binary as root', { skip: !isRoot && 'needs root (chown)' }, () => {
  // createRunnerContext refuses to start a spawner (libexec/spawner) that rootOnlyFile refuses
  test('only a file of root, writable by root only, in a directory only root can change, passes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'asmtpd-spawner-bin-'));
    const file = join(dir, 'spawner');
    try {
      writeFileSync(file, '');
      chmodSync(file, 0o755);
      assert.equal(rootOnlyFile(file), true, 'root 0755 in a root 0700 directory');
      chmodSync(file, 0o775);
      assert.equal(rootOnlyFile(file), false, 'group-writable');
      chmodSync(file, 0o755);
      chownSync(file, 1000, 0);
      assert.equal(rootOnlyFile(file), false, 'owned by another user');
      chownSync(file, 0, 0);
      chmodSync(dir, 0o777);
      assert.equal(rootOnlyFile(file), false, 'in a world-writable directory');
      assert.equal(rootOnlyFile(join(dir, 'missing')), false, 'missing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
