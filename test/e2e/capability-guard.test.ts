/**
 * setpriv cannot shrink a capability bounding set without CAP_SETPCAP, and says nothing: the
 * script runner and the network-facts process would keep everything root had. Each checks its
 * own sets at start (capability-guard.ts) and refuses to run; the daemon then does not start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startDaemon } from '../support/daemon.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : existsSync('/usr/bin/setpriv') ? false : 'setpriv is missing';

test('without CAP_SETPCAP, setpriv leaves the full bounding set (the reason for the guard)', { skip }, () => {
  const out = execFileSync(
    'setpriv',
    [
      '--bounding-set=-setpcap',
      '--inh-caps=-setpcap',
      '--',
      'setpriv',
      '--bounding-set=-all,+kill',
      '--',
      'grep',
      '^CapBnd',
      '/proc/self/status',
    ],
    {
      encoding: 'utf8',
    },
  );
  assert.notEqual(out.trim(), 'CapBnd:\t0000000000000020', 'setpriv did not drop them');
});

test('a daemon started without CAP_SETPCAP refuses to start, naming the capabilities', { skip }, async () => {
  await assert.rejects(
    startDaemon({ wrapper: ['setpriv', '--bounding-set=-setpcap', '--inh-caps=-setpcap', '--'] }),
    /holds capabilities beyond setuid,setgid,kill,dac_read_search: .*chown.*start asmtpd with CAP_SETPCAP/,
  );
});

test('with CAP_SETPCAP the same daemon starts', { skip }, async () => {
  const d = await startDaemon({ wrapper: ['setpriv', '--inh-caps=-setpcap', '--'] });
  assert.equal(d.proc.exitCode, null);
  await d.stop();
});
