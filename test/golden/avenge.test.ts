/**
 * Golden files for `asmtpd --avenge RECIPIENT [SENDER [IP]]`: each test/golden/avenge/NAME.args
 * holds the arguments, NAME.out the expected output, with the test's temporary names replaced by
 * placeholders ($ALICE, $ALICE_UID, $ALICE_HOME, $AV, $AV_UID, $AV_HOME, $ETC).
 * UPDATE_GOLDEN=1 rewrites the .out files from the current output.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN } from '../support/daemon.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { rblName, reverseName, startDnsServer, type DnsServer } from '../support/dns-server.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;
const GOLDEN = new URL('../../golden/avenge/', import.meta.url).pathname;

let alice: TestUser, av: TestUser;
let etc: string;
let conf: string;
let dns: DnsServer;

before(async () => {
  if (unavailable) return;
  // the facts of the golden runs: 192.0.2.7 has a confirmed name, is listed by one DNSBL, and
  // bob@remote.example's SPF passes for it; 2001:db8::1 has nothing
  // over DoH (tangerine, the default resolver kind)
  dns = await startDnsServer({
    udp: false,
    records: {
      [reverseName('192.0.2.7')]: [{ type: 'PTR', domain: 'mx.remote.example' }],
      'mx.remote.example': [{ type: 'A', address: '192.0.2.7' }],
      'remote.example': [{ type: 'TXT', data: 'v=spf1 ip4:192.0.2.0/24 -all' }],
      [rblName('192.0.2.7', 'bl.g.example')]: [{ type: 'A', address: '127.0.0.2' }, { type: 'TXT', data: 'see https://bl.g.example/192.0.2.7' }],
    },
  });
  alice = createUser('gal');
  av = createUser('gav');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-golden-'));
  chmodSync(etc, 0o755);
  writeScript(alice, 'rcpt', 'accept "hello $SENDER"');
  writeScript(alice, 'rcpt+no', 'reject "550 5.7.1 no thanks"');
  writeScript(alice, 'rcpt+x+default', 'defer "x default $DEFAULT"');
  writeScript(alice, 'rcpt+shared', `redirect "${av.name}@g.example"`);
  writeScript(av, 'rcpt', 'bodytest /bin/true');
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(alice) + passwdLine(av));
  conf = join(etc, 'asmtpd.conf');
  writeFileSync(conf, [`LocalDomain g.example`, `PasswdFile ${passwd}`, 'Separator +', `AvengerUser ${av.name}`, `EtcDir ${etc}`, `DBDir ${join(etc, 'db')}`, 'Hostname mx.g.example', 'RelayNet 127.0.0.0/8',
    'DNSResolver tangerine', 'DNSProtocol http', `DNSServer ${dns.doh}`, 'RBL bl.g.example', 'SMTPCB no'].join('\n') + '\n');
});

after(async () => {
  if (unavailable) return;
  await dns.close();
  removeUser(alice);
  removeUser(av);
  rmSync(etc, { recursive: true, force: true });
});

function placeholders(text: string): string {
  const pairs: Array<[string, string]> = [
    [alice.home, '$ALICE_HOME'], [av.home, '$AV_HOME'], [etc, '$ETC'],
    [alice.name, '$ALICE'], [av.name, '$AV'],
  ];
  let out = text;
  for (const [from, to] of pairs) out = out.split(from).join(to);
  return out.replace(new RegExp(`\\b${alice.uid}\\b`, 'g'), '$ALICE_UID').replace(new RegExp(`\\b${av.uid}\\b`, 'g'), '$AV_UID');
}

function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ status, stdout, stderr });
    });
  });
}

const cases = readdirSync(GOLDEN).filter((f) => f.endsWith('.args')).map((f) => f.slice(0, -5));

for (const name of cases) {
  test(`--avenge ${name}`, { skip }, async () => {
    const args = readFileSync(join(GOLDEN, `${name}.args`), 'utf8').trim().split(/\s+/)
      .map((a) => a.replace('$ALICE', alice.name).replace('$AV', av.name));
    // not spawnSync: the DNS server the facts come from runs in this process
    const r = await run(process.execPath, [ASMTPD_BIN, '--avenge', '-f', conf, ...args]);
    const got = placeholders(`exit ${r.status}\n${r.stdout}${r.stderr ? `stderr: ${r.stderr}` : ''}`);
    const outFile = join(GOLDEN, `${name}.out`);
    if (process.env.UPDATE_GOLDEN) writeFileSync(outFile, got);
    assert.equal(got, readFileSync(outFile, 'utf8'));
  });
}
