import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs, USAGE } from './args.js';
import { formatTrace, runNetpath } from './netpath.js';
import { TraceError, type TraceResult } from '../facts/netpath/trace.js';

test('--netpath IP [HOPS]: HOPS 1-64, default 30; nothing else', () => {
  assert.deepEqual(parseArgs(['--netpath', '192.0.2.1']), { mode: 'netpath', ip: '192.0.2.1', maxHops: 30 });
  assert.deepEqual(parseArgs(['--netpath', '2001:db8::1', '12']), { mode: 'netpath', ip: '2001:db8::1', maxHops: 12 });
  for (const argv of [
    ['--netpath'],
    ['--netpath', 'mx.example'],
    ['--netpath', '192.0.2.1', '0'],
    ['--netpath', '192.0.2.1', '65'],
    ['--netpath', '192.0.2.1', 'x'],
    ['--netpath', '192.0.2.1', '3', '4'],
    ['--netpath', '192.0.2.1', '-f', '/c'],
    ['--netpath', '192.0.2.1', '-d'],
    ['--check', '--netpath', '192.0.2.1'],
    ['--netpath', '192.0.2.1', '--rbl'],
  ])
    assert.equal(parseArgs(argv).mode, 'usage-error', argv.join(' '));
  assert.match(USAGE, /--netpath IP \[HOPS\]/);
});

test('output: hops, then one line per TTL; a route that did not reach the destination says so', () => {
  assert.equal(
    formatTrace({ hops: 3, path: ['10.0.1.1', '*', '10.0.3.2'], reached: true }),
    'hops: 3\n1 10.0.1.1\n2 *\n3 10.0.3.2\n',
  );
  assert.equal(
    formatTrace({ hops: 2, path: ['10.0.1.1', '10.0.2.2'], reached: false }),
    'hops: 2 (destination not reached)\n1 10.0.1.1\n2 10.0.2.2\n',
  );
});

function sink(): { write(s: string): void; text: string } {
  return {
    text: '',
    write(s) {
      this.text += s;
    },
  };
}

test('exit codes: 0 measured, 2 without permission, 1 no answer', async () => {
  const result: TraceResult = { hops: 1, path: ['127.0.0.1'], reached: true, answers: [], elapsedMs: 1 };
  let out = sink(),
    err = sink();
  let seen: unknown = null;
  assert.equal(
    await runNetpath({ ip: '127.0.0.1', maxHops: 7 }, out, err, async (ip, o) => {
      seen = [ip, o.maxHops, o.timeoutMs];
      return result;
    }),
    0,
  );
  assert.deepEqual(seen, ['127.0.0.1', 7, 5000]);
  assert.equal(out.text, 'hops: 1\n1 127.0.0.1\n');
  ((out = sink()), (err = sink()));
  assert.equal(
    await runNetpath({ ip: '192.0.2.1', maxHops: 7 }, out, err, () =>
      Promise.reject(
        new TraceError('permission', 'cannot open a raw ICMP socket: Operation not permitted (needs CAP_NET_RAW)'),
      ),
    ),
    2,
  );
  assert.equal(out.text, '');
  assert.match(err.text, /^asmtpd: --netpath: .*CAP_NET_RAW/);
  err = sink();
  assert.equal(
    await runNetpath({ ip: '192.0.2.1', maxHops: 7 }, sink(), err, () =>
      Promise.reject(new TraceError('no-answer', 'no answer from 192.0.2.1')),
    ),
    1,
  );
  assert.match(err.text, /no answer/);
});
