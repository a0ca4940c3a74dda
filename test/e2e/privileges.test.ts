/**
 * Privileges (issue 7, item 6): after start-up the SMTP-facing process runs unprivileged; only the
 * script runner (and its perl spawner) and the network-facts process (and its SYN capture helper)
 * keep root, for what they need; scripts never run as root; environment values never execute.
 *
 * The daemon is started as root with SynFP yes (so the capture process exists) and AvengerUser a
 * test account. The test walks the daemon's process tree (/proc/PID/stat: ppid), names each
 * process by its command line, and reads /proc/PID/status (Uid, Gid, Groups, CapInh, CapPrm,
 * CapEff, CapBnd, CapAmb) and /proc/PID/limits. Scripts report their own credentials in their
 * reply text (`id`, /proc/self/status).
 * Hostile senders and recipients executing nothing is in policy.test.ts; here: a hostile HELO,
 * and values expanded unquoted by the script. Needs root.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN, startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const CAP = { DAC_READ_SEARCH: 2, KILL: 5, SETGID: 6, SETUID: 7, NET_RAW: 13 } as const;
const NPROC = 512;
const MARK = join(tmpdir(), `asmtpd-priv-pwned-${process.pid}`);

let u: TestUser;
let av: TestUser;
let group: string;
let groupGid: number;
let etc: string;
let rootHome: string;
let d: Daemon;
/** the same without PasswdFile: accounts from the system database, with supplementary groups */
let sys: Daemon;

/** What the script reports about itself (in its reply text). */
const ID_SCRIPT = 'accept "uid=$(id -u) gid=$(id -g) groups=$(id -G | tr \' \' ,)' +
  ' nproc=$(grep \'^Max processes\' /proc/self/limits | tr -s \' \' | cut -d\' \' -f3)' +
  ' $(grep -E \'^(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb):\' /proc/self/status | tr -s \'\\t\' \' \' | tr \'\\n\' \';\')"';

before(async () => {
  if (unavailable) return;
  u = createUser('priv');
  av = createUser('privav');
  // a supplementary group for u: scripts get exactly the user's groups
  group = `atg${process.pid % 100000}`;
  execFileSync('groupadd', [group]);
  groupGid = Number(execFileSync('getent', ['group', group]).toString().split(':')[2]);
  execFileSync('usermod', ['-aG', group, u.name]);
  writeScript(u, 'rcpt+id', ID_SCRIPT);
  // every value, unquoted as careless scripts do: word splitting and globbing, never execution
  writeScript(u, 'rcpt+careless', 'echo $CLIENT_HELO $SENDER $SENDER_LOCAL $RECIPIENT $EXTENSION > "$HOME/careless.out"; accept "helo=$CLIENT_HELO"');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  rootHome = mkdtempSync(join(tmpdir(), 'asmtpd-roothome-'));
  chmodSync(rootHome, 0o755);
  writeScript({ uid: 0, gid: 0, home: rootHome }, 'rcpt', ID_SCRIPT);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u) + passwdLine(av) + `toor:x:0:0::${rootHome}:/bin/sh\n`);
  chmodSync(passwd, 0o644);
  [d, sys] = await Promise.all([
    startDaemon({
      etcDir: etc,
      conf: ['LocalDomain a.example', `PasswdFile ${passwd}`, 'Separator +', `AvengerUser ${av.name}`, 'SynFP yes', 'RelayNet 192.0.2.0/24'].join('\n'),
    }),
    startDaemon({ etcDir: etc, conf: ['LocalDomain a.example', 'Separator +', `AvengerUser ${av.name}`, 'RelayNet 192.0.2.0/24'].join('\n') }),
  ]);
  await d.waitLog((l) => l.event === 'netfacts.start');
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sys?.stop();
  for (const x of [u, av]) if (x) removeUser(x);
  if (group) spawnSync('groupdel', [group]);
  for (const dir of [etc, rootHome]) if (dir) rmSync(dir, { recursive: true, force: true });
  rmSync(MARK, { force: true });
});

interface Proc {
  pid: number;
  ppid: number;
  cmd: string;
  uid: number[];
  gid: number[];
  groups: number[];
  cap: { inh: bigint; prm: bigint; eff: bigint; bnd: bigint; amb: bigint };
  nproc: string;
}

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): string => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
    const nums = (name: string): number[] => field(name).split(/\s+/).filter(Boolean).map(Number);
    const cap = (name: string): bigint => BigInt(`0x${field(name) || '0'}`);
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    return {
      pid, ppid,
      cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '),
      uid: nums('Uid'), gid: nums('Gid'), groups: nums('Groups'),
      cap: { inh: cap('CapInh'), prm: cap('CapPrm'), eff: cap('CapEff'), bnd: cap('CapBnd'), amb: cap('CapAmb') },
      nproc: /^Max processes\s+(\S+)\s+(\S+)/m.exec(limits)?.slice(1).join('/') ?? '',
    };
  } catch {
    return null;
  }
}

/** The daemon and every process below it. */
function tree(root: number): Proc[] {
  const all = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((n) => readProc(Number(n))).filter((p): p is Proc => p !== null);
  const out: Proc[] = [];
  const add = (pid: number): void => {
    const p = all.find((x) => x.pid === pid);
    if (!p) return;
    out.push(p);
    for (const c of all.filter((x) => x.ppid === pid)) add(c.pid);
  };
  add(root);
  return out;
}

function role(p: Proc, daemonPid: number): string {
  if (p.pid === daemonPid) return 'smtp';
  if (/avenger-runner\/dist\/main\.js/.test(p.cmd)) return 'runner';
  if (/spawner\.pl/.test(p.cmd)) return 'spawner';
  if (/netfacts\/process\.js/.test(p.cmd)) return 'netfacts';
  if (/syn-capture\.pl/.test(p.cmd)) return 'capture';
  return `other: ${p.cmd}`;
}

const has = (caps: bigint, n: number): boolean => (caps >> BigInt(n)) % 2n === 1n;
const hex = (c: bigint): string => c.toString(16).padStart(16, '0');

async function rcpt(to: string, o: { helo?: string; from?: string; daemon?: Daemon } = {}): Promise<string> {
  const c = await SmtpClient.connect((o.daemon ?? d).port);
  try {
    await c.greeting();
    await c.cmd(`EHLO ${o.helo ?? 'client.example'}`);
    await c.cmd(`MAIL FROM:<${o.from ?? 's@remote.example'}>`);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

test('the process tree: the SMTP process is AvengerUser with no capabilities; runner, spawner, netfacts, capture keep root for what they need', { skip }, async (t) => {
  // a script run first, so the spawner surely exists
  assert.match(await rcpt(`${u.name}+id@a.example`), /^250 /);
  const daemonPid = d.proc.pid!;
  const procs = tree(daemonPid);
  for (const p of procs) {
    t.diagnostic(`${role(p, daemonPid).padEnd(8)} pid ${p.pid} uid ${p.uid.join('/')} gid ${p.gid.join('/')} groups [${p.groups.join(',')}] ` +
      `CapEff ${hex(p.cap.eff)} CapPrm ${hex(p.cap.prm)} CapInh ${hex(p.cap.inh)} CapAmb ${hex(p.cap.amb)} CapBnd ${hex(p.cap.bnd)} nproc ${p.nproc}`);
  }
  const byRole = (r: string): Proc[] => procs.filter((p) => role(p, daemonPid) === r);
  assert.deepEqual(procs.map((p) => role(p, daemonPid)).filter((r) => r.startsWith('other')), [], 'no process of another kind');
  for (const r of ['smtp', 'runner', 'spawner', 'netfacts', 'capture']) assert.equal(byRole(r).length, 1, `one ${r} process`);

  const smtp = byRole('smtp')[0]!;
  assert.deepEqual(smtp.uid, [av.uid, av.uid, av.uid, av.uid], 'real, effective, saved and filesystem uid: AvengerUser');
  assert.deepEqual(smtp.gid, [av.gid, av.gid, av.gid, av.gid]);
  assert.deepEqual(smtp.groups, [av.gid], 'no supplementary group of root');
  assert.deepEqual([smtp.cap.eff, smtp.cap.prm, smtp.cap.inh, smtp.cap.amb], [0n, 0n, 0n, 0n], 'no capability at all');
  assert.equal(statSync(d.dbDir).uid, av.uid, 'DBDir belongs to AvengerUser');

  const runner = byRole('runner')[0]!;
  const spawner = byRole('spawner')[0]!;
  for (const p of [runner, spawner]) {
    assert.equal(p.uid[1], 0, `${role(p, daemonPid)} is root`);
    // exactly what it uses (setpriv bounding set): setuid, setgid, kill, dac_read_search
    const want = [CAP.SETUID, CAP.SETGID, CAP.KILL, CAP.DAC_READ_SEARCH].reduce((m, c) => m | (1n << BigInt(c)), 0n);
    for (const set of [p.cap.eff, p.cap.prm, p.cap.bnd]) assert.equal(set, want, `${role(p, daemonPid)}: only the capabilities it uses`);
  }
  // the per-user process limit: set by the runner before it starts the spawner, which forks every script
  assert.equal(runner.nproc, `${NPROC}/${NPROC}`);
  assert.equal(spawner.nproc, `${NPROC}/${NPROC}`, 'the spawner (and so every script) has RLIMIT_NPROC');
  assert.equal(spawner.ppid, runner.pid);
  assert.equal(runner.ppid, daemonPid);

  const netfacts = byRole('netfacts')[0]!;
  const capture = byRole('capture')[0]!;
  for (const p of [netfacts, capture]) {
    assert.equal(p.uid[1], 0);
    assert.ok(has(p.cap.eff, CAP.NET_RAW), `${role(p, daemonPid)} has CAP_NET_RAW`);
    // and nothing else of root's powers: the bounding set was emptied but for it (setpriv)
    for (const set of [p.cap.eff, p.cap.prm, p.cap.bnd]) assert.equal(set, 1n << BigInt(CAP.NET_RAW), `${role(p, daemonPid)}: CAP_NET_RAW only`);
  }
  assert.equal(capture.ppid, netfacts.pid);
  assert.equal(netfacts.ppid, daemonPid);
});

test('scripts run as their user with exactly the user\'s groups and no capabilities; a root recipient\'s script runs as AvengerUser', { skip }, async () => {
  // "250 2.1.5 uid=1001 gid=1001 groups=1001,1003 Uid: 1001 1001 1001 1001;Gid: …;CapInh: 0…;"
  const creds = (reply: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const m of reply.matchAll(/\b(uid|gid|groups|nproc)=(\S+)/g)) out[m[1]!] = m[2]!;
    for (const m of reply.matchAll(/\b(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb): ([^;]+);/g)) out[m[1]!] = m[2]!.trim();
    return out;
  };
  // a PasswdFile account has no supplementary groups (docs: accounts.ts); a system account has its own
  for (const [daemon, groups] of [[d, [u.gid]], [sys, [u.gid, groupGid].sort((a, b) => a - b)]] as const) {
    const mine = creds(await rcpt(`${u.name}+id@a.example`, { daemon }));
    assert.equal(mine.uid, String(u.uid));
    assert.equal(mine.gid, String(u.gid));
    assert.deepEqual(mine.groups!.split(',').map(Number).sort((a, b) => a - b), groups);
    assert.equal(mine.Uid, `${u.uid} ${u.uid} ${u.uid} ${u.uid}`);
    assert.equal(mine.Gid, `${u.gid} ${u.gid} ${u.gid} ${u.gid}`);
    for (const c of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) assert.equal(BigInt(`0x${mine[c]}`), 0n, c);
    assert.equal(mine.nproc, String(NPROC), 'the script has the per-user process limit');
  }

  const root = creds(await rcpt('toor@a.example'));
  assert.equal(root.uid, String(av.uid), 'never uid 0: AvengerUser');
  assert.equal(root.gid, String(av.gid));
  assert.ok(!root.groups!.split(',').includes('0'), 'not in group 0');
  assert.equal(BigInt(`0x${root.CapEff}`), 0n);
});

test('a hostile HELO and values a careless script expands unquoted execute nothing', { skip }, async () => {
  const helo = `$(touch${'${IFS}'}${MARK})\`touch${'${IFS}'}${MARK}\`;touch${'${IFS}'}${MARK}`;
  const sender = `"$(touch ${MARK});\`id\`"@remote.example`;
  const reply = await rcpt(`${u.name}+careless@a.example`, { helo, from: sender });
  // smtp-server gives the HELO name in lower case
  assert.equal(reply, `250 2.1.5 helo=${helo.toLowerCase()}`);
  const out = readFileSync(join(u.home, 'careless.out'), 'utf8');
  assert.ok(out.includes(helo.toLowerCase()), out);
  assert.ok(!existsSync(MARK), 'nothing was executed');
  assert.ok(!existsSync(join(u.home, `touch`)), 'nothing was executed in the home either');
});

test('AvengerUser root (or any uid 0 account) is refused at start, exit 2', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-priv-conf-'));
  try {
    const conf = join(dir, 'asmtpd.conf');
    writeFileSync(conf, ['SMTPPort 1', 'BindAddr 127.0.0.1', `DBDir ${join(dir, 'db')}`, 'AvengerUser root', 'SynFP no', 'SMTPCB no'].join('\n') + '\n');
    // port 1 as root binds; the refusal comes after, before any session
    const r = spawnSync(process.execPath, [ASMTPD_BIN, '-d', '-f', conf], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /AvengerUser root must not be root/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
