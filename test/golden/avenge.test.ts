/**
 * Golden files for `asmtpd --avenge RECIPIENT [SENDER [IP]]`: each test/golden/avenge/NAME.args
 * holds the arguments, NAME.out the expected output, with the test's temporary names replaced by
 * placeholders ($ALICE, $ALICE_UID, $ALICE_HOME, $AV, $AV_UID, $AV_HOME, $ETC).
 * UPDATE_GOLDEN=1 rewrites the .out files from the current output.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN } from '../support/daemon.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;
const GOLDEN = new URL('../../golden/avenge/', import.meta.url).pathname;

let alice: TestUser, av: TestUser;
let etc: string;
let conf: string;

before(() => {
  if (unavailable) return;
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
  writeFileSync(conf, [`LocalDomain g.example`, `PasswdFile ${passwd}`, 'Separator +', `AvengerUser ${av.name}`, `EtcDir ${etc}`, `DBDir ${join(etc, 'db')}`, 'Hostname mx.g.example', 'RelayNet 127.0.0.0/8'].join('\n') + '\n');
});

after(() => {
  if (unavailable) return;
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

const cases = readdirSync(GOLDEN).filter((f) => f.endsWith('.args')).map((f) => f.slice(0, -5));

for (const name of cases) {
  test(`--avenge ${name}`, { skip }, () => {
    const args = readFileSync(join(GOLDEN, `${name}.args`), 'utf8').trim().split(/\s+/)
      .map((a) => a.replace('$ALICE', alice.name).replace('$AV', av.name));
    const r = spawnSync(process.execPath, [ASMTPD_BIN, '--avenge', '-f', conf, ...args], { encoding: 'utf8', timeout: 20_000 });
    const got = placeholders(`exit ${r.status}\n${r.stdout}${r.stderr ? `stderr: ${r.stderr}` : ''}`);
    const outFile = join(GOLDEN, `${name}.out`);
    if (process.env.UPDATE_GOLDEN) writeFileSync(outFile, got);
    assert.equal(got, readFileSync(outFile, 'utf8'));
  });
}
