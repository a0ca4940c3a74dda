/**
 * Without CAP_NET_RAW (issue 6): the daemon, started as root but with the capability removed from
 * its bounding set (setpriv), serves mail without SYN facts and says so in exactly one log line:
 * a warning with `SynFP yes`, an info line when SynFP is left to its default; no network facts
 * process is started and nothing crashes. (support/daemon.ts starts node directly; this file
 * starts it under setpriv with a small harness of its own.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN, type LogLine } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { freePort } from '../support/ports.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { ENV_SCRIPT, dialogue, readEnv } from '../support/facts.js';

function noSetpriv(): string | null {
  const r = spawnSync('setpriv', ['--bounding-set', '-net_raw', '--', 'true']);
  return r.status === 0 ? null : 'setpriv cannot drop CAP_NET_RAW here';
}

const unavailable = canCreateUsers() ?? noSetpriv();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

interface Started {
  port: number;
  proc: ChildProcess;
  logs: LogLine[];
  waitLog(pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

let u: TestUser;
let dir: string;
let dns: DnsServer;

/** The daemon under `setpriv --bounding-set -net_raw` (root without CAP_NET_RAW). */
async function startWithoutNetRaw(tag: string, extra: string[]): Promise<Started> {
  const port = await freePort();
  const confPath = join(dir, `${tag}.conf`);
  writeFileSync(
    confPath,
    [
      `SMTPPort ${port}`,
      'BindAddr 127.0.0.1',
      `DBDir ${join(dir, `db-${tag}`)}`,
      `EtcDir ${dir}`,
      'Hostname mx.example.test',
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'SMTPCB no',
      'LocalDomain a.example',
      `PasswdFile ${join(dir, 'passwd')}`,
      'Separator +',
      ...extra,
    ].join('\n') + '\n',
  );
  const proc = spawn(
    'setpriv',
    ['--bounding-set', '-net_raw', '--', process.execPath, ASMTPD_BIN, '-d', '-f', confPath],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: LogLine[] = [];
  let partial = '',
    text = '';
  proc.stderr!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        text += line + '\n';
      }
    }
  });
  let exited = false;
  proc.on('exit', () => (exited = true));
  const waitLog = async (pred: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (exited || Date.now() > deadline)
        throw new Error(`log line not seen (exited: ${exited}); ${text}; ${JSON.stringify(logs.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    if (exited) return;
    proc.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve();
      }, 10_000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  };
  try {
    await waitLog((l) => l.event === 'daemon.start');
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, proc, logs, waitLog, stop };
}

before(async () => {
  if (unavailable) return;
  u = createUser('synnc');
  writeScript(u, 'rcpt+default', ENV_SCRIPT);
  dir = mkdtempSync(join(tmpdir(), 'asmtpd-nocap-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'passwd'), passwdLine(u));
  chmodSync(join(dir, 'passwd'), 0o644);
  dns = await startDnsServer({ doh: false });
});

after(async () => {
  if (unavailable) return;
  await dns?.close();
  if (u) removeUser(u);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const [tag, extra, level] of [
  ['asked', ['SynFP yes'], 'warn'],
  ['auto', [], 'info'],
] as const) {
  test(
    `SynFP ${tag === 'asked' ? 'yes' : 'by default'} without CAP_NET_RAW: one ${level} line, mail served without SYN facts`,
    { skip },
    async () => {
      const d = await startWithoutNetRaw(tag, [...extra]);
      try {
        const off = await d.waitLog((l) => l.event === 'netfacts.off');
        assert.equal(off.level, level);
        assert.match(String(off.reason), /no CAP_NET_RAW/);
        const r = await dialogue(d.port, { from: 's@b.example', to: `${u.name}+${tag}@a.example` });
        assert.match(r.rcpt, /^250 /);
        const env = readEnv(u.home, tag);
        assert.equal(env.CLIENT_IP, '127.0.0.1');
        assert.deepEqual([env.CLIENT_SYNFP, env.CLIENT_SYNOS, env.CLIENT_NETHOPS], [undefined, undefined, undefined]);
        const netLines = d.logs.filter((l) => l.event.startsWith('netfacts.') || l.event.startsWith('synfp.'));
        assert.deepEqual(
          netLines.map((l) => l.event),
          ['netfacts.off'],
        );
        assert.equal(d.logs.filter((l) => l.event === 'daemon.error').length, 0);
      } finally {
        await d.stop();
      }
      assert.equal(d.proc.exitCode, 0);
    },
  );
}
