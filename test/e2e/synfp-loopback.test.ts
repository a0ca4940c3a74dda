/**
 * SYN fingerprints end to end on loopback (issue 6): the daemon, started as root, runs its network
 * facts process (SynFP yes), and a recipient's script sees CLIENT_SYNFP as this machine's kernel
 * builds its loopback SYNs (computed from its sysctls and lo's MTU, IPv4 and IPv6), CLIENT_SYNOS
 * from a fixture SynFPDB, CLIENT_NETHOPS 0; the relayed message's X-Avenger carries syn-fp, syn-os
 * and hops. The SMTP-facing process has no CAP_NET_RAW, the network facts process has it. When
 * that process dies: one log line, no SYN facts, mail still flows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, readEnv } from '../support/facts.js';
import { linuxSynFingerprint, readLinuxStack } from '../support/netns.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const FP4 = unavailable ? '' : linuxSynFingerprint(readLinuxStack(null, 4, 'lo'));
const FP6 = unavailable ? '' : linuxSynFingerprint(readLinuxStack(null, 6, 'lo'));
const OS4 = 'Linux loopback IPv4 (asmtpd fixture)';
const OS6 = 'Linux loopback IPv6 (asmtpd fixture)';

let u: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  u = createUser('synlo');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  const db = join(etc, 'pf.os');
  writeFileSync(
    db,
    [
      "# asmtpd test fixture: this machine's loopback SYNs, and a bad line (line 3)",
      `${FP4}:Linux:lo4:fixture:${OS4}`,
      'not a signature',
      `${FP6}:Linux:lo6:fixture:${OS6}`,
    ].join('\n') + '\n',
  );
  for (const f of [passwd, db]) chmodSync(f, 0o644);
  sink = await startSink();
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'BindAddr ::1',
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `RelayHost 127.0.0.1:${sink.port}`,
      'SynFP yes',
      `SynFPDB ${db}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

function synVars(env: Record<string, string>): Record<string, string | undefined> {
  return { CLIENT_SYNFP: env.CLIENT_SYNFP, CLIENT_SYNOS: env.CLIENT_SYNOS, CLIENT_NETHOPS: env.CLIENT_NETHOPS };
}

test('the network facts process started and captures; bad SynFPDB lines are logged', { skip }, async () => {
  const start = await d.waitLog((l) => l.event === 'netfacts.start');
  assert.equal(start.capture, 'on');
  assert.equal(start.level, 'info');
  const bad = await d.waitLog((l) => l.event === 'synfp.db_error');
  assert.equal(bad.line, 3);
  assert.match(FP4, /^\d+:64:1:\d+:M\d+/, 'the expectation itself');
});

test(
  'IPv4 loopback: CLIENT_SYNFP as the kernel sends it, CLIENT_SYNOS from the fixture, CLIENT_NETHOPS 0',
  { skip },
  async () => {
    const r = await dialogue(d.port, { from: 's@b.example', to: `${u.name}+lo4@a.example` });
    assert.match(r.rcpt, /^250 /);
    assert.deepEqual(synVars(readEnv(u.home, 'lo4')), { CLIENT_SYNFP: FP4, CLIENT_SYNOS: OS4, CLIENT_NETHOPS: '0' });
  },
);

test('IPv6 loopback: the hop limit and the 40-byte header are in the fingerprint', { skip }, async () => {
  const c = await SmtpClient.connect(d.port, '::1');
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    await c.cmd('MAIL FROM:<s@b.example>');
    assert.match((await c.cmd(`RCPT TO:<${u.name}+lo6@a.example>`)).last, /^250 /);
  } finally {
    c.close();
  }
  assert.match(FP6, /^\d+:64:1:80:/);
  assert.deepEqual(synVars(readEnv(u.home, 'lo6')), { CLIENT_SYNFP: FP6, CLIENT_SYNOS: OS6, CLIENT_NETHOPS: '0' });
});

test('X-Avenger carries syn-fp, syn-os and hops', { skip }, async () => {
  const c = await SmtpClient.connect(d.port, '127.0.0.1');
  await c.greeting();
  const r = await c.send('s@b.example', [`${u.name}+xav@a.example`], 'Subject: synfp\r\n\r\nbody\r\n');
  c.close();
  assert.match(r.last, /^250 /);
  const text = sink.messages.at(-1)!.data.toString('latin1');
  const xav =
    /^X-Avenger:(.*(?:\r\n[ \t].*)*)/m
      .exec(text)?.[1]
      ?.replace(/\r\n[ \t]/g, ' ')
      .trim() ?? '';
  const items = xav.split('; ');
  assert.ok(items.includes(`syn-fp=${FP4}`), xav);
  assert.ok(items.includes(`syn-os=${OS4}`), xav);
  assert.ok(items.includes('hops=0'), xav);
});

test('the SMTP-facing process has no CAP_NET_RAW; the network facts process has it', { skip }, async () => {
  const capEff = (pid: number): bigint =>
    BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
  const uid = (pid: number): number => Number(/^Uid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  const NET_RAW = 1n << 13n;
  const net = Number((await d.waitLog((l) => l.event === 'netfacts.start')).pid);
  assert.notEqual(uid(d.proc.pid!), 0);
  assert.equal(capEff(d.proc.pid!) & NET_RAW, 0n);
  assert.equal(capEff(d.proc.pid!), 0n);
  assert.equal(capEff(net) & NET_RAW, NET_RAW);
});

test('SIGHUP with SynFP no stops the capture (no SYN facts); back to yes, it captures again', { skip }, async () => {
  const conf = (synFp: string): string =>
    [
      'BindAddr ::1',
      'LocalDomain a.example',
      `PasswdFile ${join(etc, 'passwd')}`,
      'Separator +',
      `RelayHost 127.0.0.1:${sink.port}`,
      `SynFP ${synFp}`,
      `SynFPDB ${join(etc, 'pf.os')}`,
    ].join('\n');
  const reloads = (): number => d.logs.filter((l) => l.event === 'daemon.reload').length;
  const before = reloads();
  d.writeConf(conf('no'));
  d.signal('SIGHUP');
  await d.waitLog((l) => l.event === 'netfacts.capture' && l.capture === 'off');
  await dialogue(d.port, { from: 's@b.example', to: `${u.name}+off@a.example` });
  assert.deepEqual(synVars(readEnv(u.home, 'off')), {
    CLIENT_SYNFP: undefined,
    CLIENT_SYNOS: undefined,
    CLIENT_NETHOPS: undefined,
  });
  d.writeConf(conf('yes'));
  d.signal('SIGHUP');
  await d.waitLog(() => reloads() === before + 2);
  await d.waitLog((l) => l.event === 'netfacts.capture' && l.capture === 'on');
  await dialogue(d.port, { from: 's@b.example', to: `${u.name}+on@a.example` });
  assert.deepEqual(synVars(readEnv(u.home, 'on')), { CLIENT_SYNFP: FP4, CLIENT_SYNOS: OS4, CLIENT_NETHOPS: '0' });
});

test('the network facts process dies: one log line, no SYN facts, mail still accepted', { skip }, async () => {
  const net = Number((await d.waitLog((l) => l.event === 'netfacts.start')).pid);
  process.kill(net, 'SIGKILL');
  await d.waitLog((l) => l.event === 'netfacts.exit');
  const r = await dialogue(d.port, { from: 's@b.example', to: `${u.name}+dead@a.example` });
  assert.match(r.rcpt, /^250 /);
  assert.deepEqual(synVars(readEnv(u.home, 'dead')), {
    CLIENT_SYNFP: undefined,
    CLIENT_SYNOS: undefined,
    CLIENT_NETHOPS: undefined,
  });
  await dialogue(d.port, { from: 's@b.example', to: `${u.name}+dead2@a.example` });
  assert.equal(d.logs.filter((l) => l.event === 'netfacts.exit').length, 1);
  assert.equal(d.logs.filter((l) => l.event === 'daemon.error').length, 0);
});
