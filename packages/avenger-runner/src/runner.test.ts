// End-to-end tests of the runner process as root: real temporary users, real scripts.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startRunner, type RunnerClient } from './client.js';
import type { RcptRequest, RunResult } from './protocol.js';
import { createTempUser, isRoot, waitForEmptyGroup, type TempUser } from './test-support.js';

type Ran = Extract<RunResult, { kind: 'ran' }>;

describe('avenger runner as root', { skip: !isRoot && 'needs root (creates users)' }, () => {
  let user: TempUser;
  let runner: RunnerClient;

  before(async () => {
    user = createTempUser();
    runner = await startRunner({ onLog: () => {} });
  });
  after(async () => {
    await runner?.close();
    user?.remove();
  });

  function writeScript(name: string, body: string, mode = 0o644): string {
    const path = join(user.avengerDir, name);
    writeFileSync(path, body);
    chownSync(path, user.uid, user.gid);
    chmodSync(path, mode);
    return path;
  }

  function rcpt(candidates: string[], env: Record<string, string> = {}, timeoutMs = 10_000): RcptRequest {
    return {
      kind: 'rcpt', uid: user.uid, gid: user.gid, groups: user.groups, user: user.name, home: user.home,
      dir: user.avengerDir, candidates, env: { USER: user.name, HOME: user.home, ...env }, timeoutMs,
    };
  }

  async function ran(request: Parameters<RunnerClient['run']>[0]): Promise<Ran> {
    const r = await runner.run(request);
    assert.equal(r.kind, 'ran', JSON.stringify(r));
    return r as Ran;
  }

  test('runner reports itself privileged', () => assert.equal(runner.privileged, true));

  test('each decision function', async () => {
    const cases: Array<[string, string, Record<string, string>, unknown]> = [
      ['accept', 'accept', {}, { verb: 'accept', args: [] }],
      ['accept-text', 'accept "fine by me"', {}, { verb: 'accept', args: ['fine by me'] }],
      ['reject', 'reject 550 5.7.1 go  away', {}, { verb: 'reject', args: ['550 5.7.1 go away'] }],
      ['defer', 'defer "451 4.7.1 greylisted,  try later"', {}, { verb: 'defer', args: ['451 4.7.1 greylisted,  try later'] }],
      ['redirect', 'redirect avenger+grey@example.org', {}, { verb: 'redirect', args: ['avenger+grey@example.org'] }],
      ['bodytest', 'bodytest spamc -c "a b"', {}, { verb: 'bodytest', args: ['spamc', '-c', 'a b'] }],
      ['errcheck5', 'errcheck; accept', { MAIL_ERROR: '550 5.7.1 listed' }, { verb: 'reject', args: ['550 5.7.1 listed'] }],
      ['errcheck4', 'errcheck; accept', { MAIL_ERROR: '451 4.4.3 dns' }, { verb: 'defer', args: ['451 4.4.3 dns'] }],
      ['errcheck-unset', 'errcheck; accept', {}, { verb: 'accept', args: [] }],
      ['errcheck-empty', 'errcheck; accept', { MAIL_ERROR: '' }, { verb: 'accept', args: [] }],
      ['ends-script', 'reject no\necho after >&2\naccept', {}, { verb: 'reject', args: ['no'] }],
      ['subshell-first-wins', '(defer first)\naccept', {}, { verb: 'defer', args: ['first'] }],
    ];
    await Promise.all(cases.map(async ([name, body, env, decision]) => {
      writeScript(`rcpt+${name}`, `${body}\n`);
      const r = await ran(rcpt([`rcpt+${name}`], env));
      assert.deepEqual(r.decision, decision, name);
      assert.equal(r.exitCode, 0, name);
      assert.equal(r.stderr, '', name);
    }));
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

  test('hostile values arrive byte-exact in the environment and execute nothing', async () => {
    const marker = join(user.home, 'pwned');
    const hostile = [
      `$(touch ${marker})@a.example`,
      `\`touch ${marker}\`@a.example`,
      `a;touch ${marker}@a.example`,
      `a|touch ${marker}`,
      `"quoted" 'single' and  spaces@a.example`,
      `new\nline\r\n@a.example`,
      `\${HOME}\\n%s*?[a]@a.example`,
      `-n`,
      `ünïcødé@ä.example`,
    ];
    writeScript('rcpt+echo', 'printf "%s\\0" "$SENDER" "$RECIPIENT"\naccept "$SENDER"\n');
    for (const value of hostile) {
      const r = await ran(rcpt(['rcpt+echo'], { SENDER: value, RECIPIENT: value }));
      assert.equal(r.stdout, `${value}\0${value}\0`);
      assert.deepEqual(r.decision, { verb: 'accept', args: [value] });
    }
    assert.equal(existsSync(marker), false, 'nothing was executed');
  });

  test("the script runs as the user: uid, gid, supplementary groups, umask 077, cwd home, clean env, only fds 0-4", async () => {
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
    const env = (lines[6] ?? '').trim().split(' ').filter((v) => !v.startsWith('PWD=') && !v.startsWith('OLDPWD='));
    assert.deepEqual(env, [`HOME=${user.home}`, 'PATH=/usr/local/bin:/usr/bin:/bin', 'SENDER=s@x', `USER=${user.name}`]);
    // ls itself adds one descriptor for the directory it reads.
    assert.match(lines[7] ?? '', /^0 1 2 3 4 \d+ $/);
    assert.equal(r.uid, user.uid);
  });

  test('PATH cannot be overridden by the request', async () => {
    writeScript('rcpt+path', 'echo "$PATH"; accept\n');
    const r = await ran(rcpt(['rcpt+path'], { PATH: `${user.home}:/tmp` }));
    assert.equal(r.stdout, '/usr/local/bin:/usr/bin:/bin\n');
  });

  test('uid 0 is refused', async () => {
    const r = await runner.run({ ...rcpt(['rcpt']), uid: 0 });
    assert.deepEqual(r, { kind: 'refused', tried: [], script: null, reason: 'refusing to run anything as uid 0' });
    const c = await runner.run({ kind: 'command', uid: 0, gid: 0, groups: [], user: 'root', home: '/', argv: ['id'], env: {}, timeoutMs: 1000 });
    assert.equal(c.kind, 'refused');
  });

  test('unsafe scripts and directories are refused with a reason; nothing runs', async () => {
    const marker = join(user.home, 'ran-anyway');
    writeScript('rcpt+gw', `touch ${marker}; accept\n`, 0o664);
    let r = await runner.run(rcpt(['rcpt+gw']));
    assert.deepEqual(r, { kind: 'refused', tried: [`${user.avengerDir}/rcpt+gw`], script: `${user.avengerDir}/rcpt+gw`, reason: `${user.avengerDir}/rcpt+gw is group-writable` });
    mkdirSync(join(user.avengerDir, 'rcpt+dir'));
    r = await runner.run(rcpt(['rcpt+dir']));
    assert.equal(r.kind === 'refused' && r.reason, `${user.avengerDir}/rcpt+dir is not a regular file`);
    writeScript('rcpt+foreign', `touch ${marker}; accept\n`);
    chownSync(join(user.avengerDir, 'rcpt+foreign'), 65534, 65534);
    r = await runner.run(rcpt(['rcpt+foreign']));
    assert.equal(r.kind === 'refused' && r.reason, `${user.avengerDir}/rcpt+foreign is owned by uid 65534, not ${user.uid} or root`);
    chmodSync(user.avengerDir, 0o775);
    try {
      r = await runner.run(rcpt(['rcpt+whoami']));
      assert.equal(r.kind === 'refused' && r.reason, `${user.avengerDir} is group-writable`);
    } finally {
      chmodSync(user.avengerDir, 0o755);
    }
    assert.equal(existsSync(marker), false);
  });

  test('lookup order over candidates; absent → none', async () => {
    writeScript('rcpt+a+default', 'accept a-default\n');
    writeScript('rcpt+default', 'accept default\n');
    let r = await ran(rcpt(['rcpt+a+b', 'rcpt+a+default', 'rcpt+default']));
    assert.deepEqual(r.decision?.args, ['a-default']);
    assert.deepEqual(r.tried, [`${user.avengerDir}/rcpt+a+b`, `${user.avengerDir}/rcpt+a+default`]);
    assert.equal(r.script, `${user.avengerDir}/rcpt+a+default`);
    r = await ran(rcpt(['rcpt+x+y', 'rcpt+x+default', 'rcpt+default']));
    assert.deepEqual(r.decision?.args, ['default']);
    writeScript('rcpt+dflt', 'accept "DEFAULT=${DEFAULT-unset} PATH=$PATH"\n');
    const withEnv = { ...rcpt(['rcpt+dflt+x', 'rcpt+dflt']), candidateEnv: { 'rcpt+dflt+x': { DEFAULT: 'no' }, 'rcpt+dflt': { DEFAULT: 'x', PATH: '/evil' } } };
    r = await ran(withEnv);
    assert.deepEqual(r.decision?.args, ['DEFAULT=x PATH=/usr/local/bin:/usr/bin:/bin'], 'candidateEnv of the file found, PATH still fixed');
    const none = await runner.run(rcpt(['rcpt+q', '../rcpt+default', '.rcpt']));
    assert.deepEqual(none, { kind: 'none', tried: [`${user.avengerDir}/rcpt+q`] });
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
    writeScript('rcpt+bg', 'echo $$ > "$HOME/bg.pgid"\n(sleep 1000 >/dev/null 2>&1 3>&- &)\nsleep 1000 >/dev/null 2>&1 3>&- &\naccept\n');
    const r = await ran(rcpt(['rcpt+bg']));
    assert.deepEqual(r.decision, { verb: 'accept', args: [] });
    assert.equal(r.timedOut, false);
    const pgid = Number(readFileSync(join(user.home, 'bg.pgid'), 'utf8'));
    assert.deepEqual(await waitForEmptyGroup(pgid), []);
  });

  test('command kind: argv without a shell, seekable stdin the user cannot open by path, exit codes passed through', async () => {
    const message = join(user.base, 'message.eml');
    writeFileSync(message, 'Subject: hi\r\n\r\nbody\r\n', { mode: 0o600 });
    const command = (argv: string[], stdinPath?: string) => ({
      kind: 'command' as const, uid: user.uid, gid: user.gid, groups: user.groups, user: user.name, home: user.home,
      argv, env: { HOME: user.home }, timeoutMs: 10_000, ...(stdinPath ? { stdinPath } : {}),
    });
    const twice = await ran(command(['perl', '-e', 'my $a = join "", <STDIN>; seek(STDIN, 0, 0) or die "seek: $!"; my $b = join "", <STDIN>; print length($a), " ", length($b), "\\n"'], message));
    assert.equal(twice.stdout, '21 21\n');
    const byPath = await ran(command(['cat', message]));
    assert.equal(byPath.exitCode, 1);
    assert.match(byPath.stderr, /Permission denied/);
    for (const code of [0, 99, 100, 111, 2]) {
      const r = await ran(command(['sh', '-c', `head -n1; exit ${code}`], message));
      assert.equal(r.exitCode, code);
      assert.equal(r.stdout, 'Subject: hi\r\n');
    }
    const literal = await ran(command(['printf', '%s|', '$(id)', '`id`', 'a;b']));
    assert.equal(literal.stdout, '$(id)|`id`|a;b|');
    const missing = await ran(command(['no-such-command-here']));
    assert.equal(missing.exitCode, 127);
    const noStdin = await ran(command(['wc', '-c']));
    assert.equal(noStdin.stdout.trim(), '0');
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

  test('bad requests get an error result, not a crash', async () => {
    const r = await runner.run({ ...rcpt(['rcpt']), env: { 'BAD NAME': 'x' } });
    assert.equal(r.kind, 'error');
    const missingHome = await runner.run({ ...rcpt(['rcpt+n']), home: join(user.base, 'nowhere') });
    assert.equal(missingHome.kind === 'ran' ? missingHome.exitCode : missingHome.kind, 126);
  });
});
