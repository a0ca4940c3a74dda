import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extraCapabilities } from './capability-guard.js';

const status = (bnd: string, prm = '0', eff = prm, inh = '0', amb = '0'): string =>
  `Name:\tnode\nCapInh:\t${inh}\nCapPrm:\t${prm}\nCapEff:\t${eff}\nCapBnd:\t${bnd}\nCapAmb:\t${amb}\n`;

test('extraCapabilities: what any set holds beyond the allowed names', () => {
  const runner = ['setuid', 'setgid', 'kill', 'dac_read_search'];
  // setuid 7, setgid 6, kill 5, dac_read_search 2 → 0xe4
  assert.deepEqual(extraCapabilities(status('e4', 'e4'), runner), []);
  assert.deepEqual(extraCapabilities(status('1fffeffffff', 'e4'), runner).slice(0, 3), [
    'chown',
    'dac_override',
    'fowner',
  ]);
  assert.deepEqual(
    extraCapabilities(status('e4', 'e4', 'e4', '2000'), runner),
    ['net_raw'],
    'the inheritable set counts',
  );
  assert.deepEqual(extraCapabilities(status('2000', '2000', '2000', '2000', '2000'), ['net_raw']), []);
  assert.deepEqual(
    extraCapabilities(status('2000', '0', '0', '0', '2001'), ['net_raw']),
    ['chown'],
    'the ambient set counts',
  );
  assert.deepEqual(extraCapabilities('Name:\tnode\n', ['net_raw']), ['CapBnd unreadable']);
});
