/**
 * Attack 6 of issue 13 (docs/security.md): the network-facts process parses packets from the
 * network with a native addon; at df3c8d8 it was still uid 0 (only its bounding set was reduced),
 * so a bug there was root: it could read /etc/shadow and write or chmod root's files.
 *
 * The test runs code inside the real process (gdb calls into it, with its credentials: what an
 * exploited parser bug would do) — open a root-only file, chmod one, open /etc/shadow — and reads
 * its credentials and those of its capture helper from /proc. Needs root and gdb.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { callInProcess, cString, gdbAvailable, theProcess } from '../support/procs.js';

const unavailable = gdbAvailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root with gdb: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let d: Daemon;
let base: string;
let rootFile: string;

before(async () => {
  if (unavailable) return;
  base = mkdtempSync(join(tmpdir(), 'asmtpd-attack6-'));
  chmodSync(base, 0o755);
  mkdirSync(join(base, 'root-only'), { mode: 0o700 });
  rootFile = join(base, 'root-only', 'file');
  writeFileSync(rootFile, 'root\n', { mode: 0o600 });
  d = await startDaemon({ conf: 'SynFP yes\nNetPath yes' });
  await d.waitLog((l) => l.event === 'netfacts.start');
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

test("code running inside the network-facts process cannot read or change root's files", { skip }, () => {
  const net = theProcess(d.proc.pid!, 'netfacts');
  assert.equal(callInProcess(net.pid, `(int)open(${cString(rootFile)}, 0)`), '-1', 'a root-only file cannot be opened');
  assert.equal(callInProcess(net.pid, '(int)open("/etc/shadow", 0)'), '-1', '/etc/shadow cannot be opened');
  assert.equal(
    callInProcess(net.pid, `(int)chmod(${cString(rootFile)}, 0666)`),
    '-1',
    'a root file cannot be chmodded',
  );
  assert.equal(
    callInProcess(net.pid, `(int)chown(${cString(rootFile)}, ${net.uid[1]}, ${net.gid[1]})`),
    '-1',
    'nor chowned',
  );
  assert.equal(statSync(rootFile).mode & 0o777, 0o600);
  assert.equal(statSync(rootFile).uid, 0);
  // it still does its job: CAP_NET_RAW works in it (a raw ICMP socket opens)
  assert.notEqual(
    callInProcess(net.pid, '(int)socket(2, 3, 1)'),
    '-1',
    'a raw ICMP socket (AF_INET, SOCK_RAW, IPPROTO_ICMP) opens',
  );
});

test(
  'the network-facts process and its capture helper: their own account, CAP_NET_RAW alone (ambient), no_new_privs',
  { skip },
  () => {
    for (const role of ['netfacts', 'capture']) {
      const p = theProcess(d.proc.pid!, role);
      assert.ok(
        p.uid.every((u) => u !== 0),
        `${role}: not root (${p.uid.join(' ')})`,
      );
      assert.ok(
        p.gid.every((g) => g !== 0),
        `${role}: not group root`,
      );
      assert.deepEqual(p.groups, [], `${role}: no supplementary groups`);
      const netRaw = 1n << 13n;
      assert.deepEqual(
        [p.cap.eff, p.cap.prm, p.cap.inh, p.cap.amb, p.cap.bnd],
        [netRaw, netRaw, netRaw, netRaw, netRaw],
        `${role}: CAP_NET_RAW only`,
      );
      assert.equal(p.noNewPrivs, 1, `${role}: no_new_privs`);
    }
  },
);
