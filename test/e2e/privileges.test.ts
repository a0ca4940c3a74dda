/**
 * Privileges (issue 7, item 6; issue 13): after start-up the SMTP-facing process runs as
 * DaemonUser with no capability; the script runner and its spawner keep root with setuid,
 * setgid, kill and dac_read_search only; the network-facts process and its capture helper run as
 * NetFactsUser with CAP_NET_RAW alone; scripts and body tests run as their user.
 *
 * The expected values are the table "Every process, from /proc" of docs/security.md: the test
 * reads it and compares every cell with /proc/PID/status of a daemon started as root (SynFP and
 * NetPath on), and with what a user's rcpt script, an EtcDir script and a body test report about
 * themselves. Also: the exact groups of a script's user, a hostile HELO expanded by a careless
 * script, and the accounts refused at start. Needs root.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN, startDaemon, testWorkers, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { accountIds, dumpable, processTree, readProc, roleOf, type Proc } from '../support/procs.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const NPROC = 512;
const CAPS: Record<string, number> = { dac_read_search: 2, kill: 5, setgid: 6, setuid: 7, net_raw: 13 };
/** A script's or body test's report of itself: its /proc status lines and the owner of its /proc dir. */
const SELF_REPORT =
  'grep -E "^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):" /proc/$$/status; echo "Owner: $(stat -c %u /proc/$$)"';
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
const ID_SCRIPT =
  "accept \"uid=$(id -u) gid=$(id -g) groups=$(id -G | tr ' ' ,)" +
  " nproc=$(grep '^Max processes' /proc/self/limits | tr -s ' ' | cut -d' ' -f3)" +
  " $(grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb):' /proc/self/status | tr -s '\\t' ' ' | tr '\\n' ';')\"";

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
  writeScript(u, 'rcpt+self', `(${SELF_REPORT}) > "$HOME/proc.rcpt"; accept`);
  writeScript(
    u,
    'rcpt+bt',
    `bodytest sh -c '(${SELF_REPORT.replace(/'/g, `'\\''`)}) > "$HOME/proc.bodytest"; cat > /dev/null'`,
  );
  // every value, unquoted as careless scripts do: word splitting and globbing, never execution
  writeScript(
    u,
    'rcpt+careless',
    'echo $CLIENT_HELO $SENDER $SENDER_LOCAL $RECIPIENT $EXTENSION > "$HOME/careless.out"; accept "helo=$CLIENT_HELO"',
  );
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  writeFileSync(join(etc, 'unknown'), `(${SELF_REPORT}) > "$HOME/proc.system"; accept\n`, { mode: 0o755 });
  rootHome = mkdtempSync(join(tmpdir(), 'asmtpd-roothome-'));
  chmodSync(rootHome, 0o755);
  writeScript({ uid: 0, gid: 0, home: rootHome }, 'rcpt', ID_SCRIPT);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u) + passwdLine(av) + `toor:x:0:0::${rootHome}:/bin/sh\n`);
  chmodSync(passwd, 0o644);
  [d, sys] = await Promise.all([
    startDaemon({
      etcDir: etc,
      conf: [
        'LocalDomain a.example',
        `PasswdFile ${passwd}`,
        'Separator +',
        `AvengerUser ${av.name}`,
        'SynFP yes',
        'NetPath yes',
        'RelayNet 192.0.2.0/24',
      ].join('\n'),
    }),
    startDaemon({
      etcDir: etc,
      conf: ['LocalDomain a.example', 'Separator +', `AvengerUser ${av.name}`, 'RelayNet 192.0.2.0/24'].join('\n'),
    }),
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

/** The table "Every process, from /proc" of docs/security.md: process name → column → cell. */
function documentedTable(): Map<string, Record<string, string>> {
  const lines = readFileSync(new URL('../../../docs/security.md', import.meta.url), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('| process | uid |'));
  assert.ok(start >= 0, 'docs/security.md has the process table');
  const cells = (l: string): string[] =>
    l
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const header = cells(lines[start]!);
  const rows = new Map<string, Record<string, string>>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const c = cells(line);
    rows.set(c[0]!, Object.fromEntries(header.map((h, i) => [h, c[i]!])));
  }
  return rows;
}

interface Seen {
  uid: number[];
  gid: number[];
  groups: number[];
  caps: Record<'CapEff' | 'CapPrm' | 'CapInh' | 'CapAmb' | 'CapBnd', bigint>;
  noNewPrivs: number;
  dumpable: boolean | null;
}

function seenOf(p: Proc): Seen {
  return {
    uid: p.uid,
    gid: p.gid,
    groups: p.groups,
    noNewPrivs: p.noNewPrivs,
    dumpable: dumpable(p),
    caps: { CapEff: p.cap.eff, CapPrm: p.cap.prm, CapInh: p.cap.inh, CapAmb: p.cap.amb, CapBnd: p.cap.bnd },
  };
}

/** What a script or body test wrote about itself (SELF_REPORT). */
function reported(path: string): Seen {
  const text = readFileSync(path, 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const nums = (name: string): number[] => field(name).split(/\s+/).filter(Boolean).map(Number);
  const cap = (name: string): bigint => BigInt(`0x${field(name) || '0'}`);
  const uid = nums('Uid');
  return {
    uid,
    gid: nums('Gid'),
    groups: nums('Groups'),
    noNewPrivs: Number(field('NoNewPrivs')),
    dumpable: uid[1] === 0 ? null : Number(field('Owner')) === uid[1],
    caps: {
      CapEff: cap('CapEff'),
      CapPrm: cap('CapPrm'),
      CapInh: cap('CapInh'),
      CapAmb: cap('CapAmb'),
      CapBnd: cap('CapBnd'),
    },
  };
}

test(
  'every process holds exactly what docs/security.md says (/proc: ids, groups, capabilities, no_new_privs, dumpable)',
  { skip },
  async (t) => {
    // a script, an EtcDir script and a body test run first (the spawner exists from then on)
    assert.match(await rcpt(`${u.name}+self@a.example`), /^250 /);
    assert.match(await rcpt('nobody-here@a.example'), /^250 /);
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    const sent = await c.send('s@remote.example', [`${u.name}+bt@a.example`], 'Subject: body test\r\n\r\nbody\r\n');
    c.close();
    assert.match(sent.last, /^250 /);

    const daemonPid = d.proc.pid!;
    const procs = processTree(daemonPid);
    const one = (role: string): Seen => {
      const found = procs.filter((p) => roleOf(p, daemonPid) === role);
      assert.equal(found.length, 1, `one ${role} process`);
      return seenOf(found[0]!);
    };
    assert.deepEqual(
      procs.map((p) => roleOf(p, daemonPid)).filter((r) => r.startsWith('other')),
      [],
      'no process of another kind',
    );
    // with Workers N (ASMTPD_TEST_WORKERS) the SMTP process is the primary and each worker holds
    // exactly what it holds
    const workers = procs.filter((p) => roleOf(p, daemonPid) === 'worker');
    assert.equal(workers.length, testWorkers() > 1 ? testWorkers() : 0, 'one process per worker');
    for (const w of workers) assert.deepEqual(seenOf(w), seenOf(procs.find((p) => p.pid === daemonPid)!));
    const seen: Record<string, Seen> = {
      'SMTP process': one('smtp'),
      'script runner': one('runner'),
      spawner: one('spawner'),
      'network facts': one('netfacts'),
      'SYN capture helper': one('capture'),
      "a user's rcpt script": reported(join(u.home, 'proc.rcpt')),
      'an EtcDir script': reported(join(av.home, 'proc.system')),
      'a body test': reported(join(u.home, 'proc.bodytest')),
    };

    const daemonUser = accountIds('asmtpd');
    const netUser = accountIds('asmtpd-net');
    const accounts: Record<string, { uid: number; gid: number; groups: number[] }> = {
      root: { uid: 0, gid: 0, groups: [] },
      DaemonUser: { ...daemonUser, groups: [daemonUser.gid] },
      NetFactsUser: { ...netUser, groups: [] },
      // the daemon d has a PasswdFile: its accounts have their gid as their only group
      'the user': { uid: u.uid, gid: u.gid, groups: [u.gid] },
      AvengerUser: { uid: av.uid, gid: av.gid, groups: [av.gid] },
    };
    const all = readProc(process.pid)!.cap.bnd;
    const caps = (cell: string): bigint =>
      cell === 'none'
        ? 0n
        : cell === 'all'
          ? all
          : cell.split(' ').reduce((m, name) => m | (1n << BigInt(CAPS[name] ?? Number.NaN)), 0n);
    const groups = (cell: string): number[] | 'root' => {
      if (cell === "root's") return 'root';
      if (cell === 'none') return [];
      return accounts[cell.replace(/'s$/, '')]!.groups;
    };

    const table = documentedTable();
    assert.deepEqual(
      [...table.keys()].sort(),
      Object.keys(seen).sort(),
      'the table has a row for every process, and no other',
    );
    for (const [name, want] of table) {
      const got = seen[name]!;
      t.diagnostic(
        `${name}: uid ${got.uid.join('/')} gid ${got.gid.join('/')} groups [${got.groups.join(',')}] ` +
          `eff ${got.caps.CapEff.toString(16)} prm ${got.caps.CapPrm.toString(16)} inh ${got.caps.CapInh.toString(16)} amb ${got.caps.CapAmb.toString(16)} ` +
          `bnd ${got.caps.CapBnd.toString(16)} nnp ${got.noNewPrivs} dumpable ${got.dumpable}`,
      );
      const uid = accounts[want.uid!]!.uid;
      const gid = accounts[want.gid!]!.gid;
      assert.deepEqual(got.uid, [uid, uid, uid, uid], `${name}: real, effective, saved and filesystem uid ${want.uid}`);
      assert.deepEqual(got.gid, [gid, gid, gid, gid], `${name}: gid ${want.gid}`);
      const g = groups(want.groups!);
      if (g === 'root')
        assert.ok(
          got.groups.every((x) => x === 0),
          `${name}: root's groups only`,
        );
      else assert.deepEqual([...got.groups].sort(), [...g].sort(), `${name}: groups ${want.groups}`);
      for (const set of ['CapEff', 'CapPrm', 'CapInh', 'CapAmb', 'CapBnd'] as const) {
        assert.equal(got.caps[set].toString(16), caps(want[set]!).toString(16), `${name}: ${set} ${want[set]}`);
      }
      assert.equal(got.noNewPrivs, Number(want.NoNewPrivs), `${name}: NoNewPrivs`);
      assert.equal(
        got.dumpable,
        want.dumpable === 'yes' ? true : want.dumpable === 'no' ? false : null,
        `${name}: dumpable ${want.dumpable}`,
      );
    }
  },
);

test(
  "scripts get the per-user process limit; the runner is the daemon's child, the spawner the runner's",
  { skip },
  async () => {
    const mine = await rcpt(`${u.name}+id@a.example`);
    assert.match(mine, new RegExp(` nproc=${NPROC} `));
    const daemonPid = d.proc.pid!;
    const procs = processTree(daemonPid);
    const byRole = (r: string): Proc => procs.find((p) => roleOf(p, daemonPid) === r)!;
    assert.equal(byRole('runner').ppid, daemonPid);
    assert.equal(byRole('spawner').ppid, byRole('runner').pid);
    assert.equal(byRole('capture').ppid, byRole('netfacts').pid);
    assert.equal(byRole('netfacts').ppid, daemonPid);
  },
);

test(
  "scripts run as their user with exactly the user's groups and no capabilities; a root recipient's script runs as AvengerUser",
  { skip },
  async () => {
    // "250 2.1.5 uid=1001 gid=1001 groups=1001,1003 Uid: 1001 1001 1001 1001;Gid: …;CapInh: 0…;"
    const creds = (reply: string): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const m of reply.matchAll(/\b(uid|gid|groups|nproc)=(\S+)/g)) out[m[1]!] = m[2]!;
      for (const m of reply.matchAll(/\b(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb): ([^;]+);/g)) out[m[1]!] = m[2]!.trim();
      return out;
    };
    // a PasswdFile account has no supplementary groups (docs: accounts.ts); a system account has its own
    for (const [daemon, groups] of [
      [d, [u.gid]],
      [sys, [u.gid, groupGid].sort((a, b) => a - b)],
    ] as const) {
      const mine = creds(await rcpt(`${u.name}+id@a.example`, { daemon }));
      assert.equal(mine.uid, String(u.uid));
      assert.equal(mine.gid, String(u.gid));
      assert.deepEqual(
        mine
          .groups!.split(',')
          .map(Number)
          .sort((a, b) => a - b),
        groups,
      );
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
  },
);

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

test('accounts that must not run the daemon or its scripts are refused at start, exit 2', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-priv-conf-'));
  chmodSync(dir, 0o755);
  try {
    const cases: Array<[string[], RegExp]> = [
      [['AvengerUser root'], /AvengerUser root must not be root/],
      [['AvengerUser nobody'], /AvengerUser nobody must not be nobody/],
      [['DaemonUser nobody'], /DaemonUser nobody must not be nobody/],
      [['DaemonUser root'], /DaemonUser root must not be root/],
      [[`DaemonUser ${av.name}`, `AvengerUser ${av.name}`], /DaemonUser and AvengerUser must be different accounts/],
      [['DaemonUser no-such-account'], /DaemonUser no-such-account does not exist \(create it/],
    ];
    for (const [lines, message] of cases) {
      const conf = join(dir, 'asmtpd.conf');
      writeFileSync(
        conf,
        ['SMTPPort 1', 'BindAddr 127.0.0.1', `DBDir ${join(dir, 'db')}`, 'SynFP no', 'SMTPCB no', ...lines].join('\n') +
          '\n',
      );
      const r = spawnSync(process.execPath, [ASMTPD_BIN, '-d', '-f', conf], { encoding: 'utf8', timeout: 15_000 });
      assert.equal(r.status, 2, `${lines.join(', ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
