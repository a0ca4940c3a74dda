import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, USAGE } from './args.js';
import { formatSynLine, runSynfp } from './synfp.js';
import { CaptureError, type CaptureOptions } from '../facts/synfp/capture.js';
import type { SynInfo } from '../facts/synfp/syn-packet.js';
import { testConfig } from '../testing/relay.js';

const sink = (): { text: string; write(s: string): void } => ({
  text: '',
  write(s) {
    this.text += s;
  },
});

test('--synfp [-f FILE] [PORT [IP [IFACE...]]]', () => {
  assert.deepEqual(parseArgs(['--synfp']), {
    mode: 'synfp',
    file: '/etc/avenger/asmtpd.conf',
    fileGiven: false,
    port: 25,
    ip: null,
    interfaces: [],
  });
  assert.deepEqual(parseArgs(['--synfp', '-f', '/c', '2525', '192.0.2.1', 'eth0', 'eth1']), {
    mode: 'synfp',
    file: '/c',
    fileGiven: true,
    port: 2525,
    ip: '192.0.2.1',
    interfaces: ['eth0', 'eth1'],
  });
  assert.deepEqual(parseArgs(['--synfp', '25', 'any', 'eth0']), {
    mode: 'synfp',
    file: '/etc/avenger/asmtpd.conf',
    fileGiven: false,
    port: 25,
    ip: null,
    interfaces: ['eth0'],
  });
  assert.equal(parseArgs(['--synfp', '25', '*']).mode, 'synfp');
  for (const argv of [
    ['--synfp', '0'],
    ['--synfp', '65536'],
    ['--synfp', '25', 'host.example'],
    ['--synfp', '25', 'any', 'a/b'],
    ['--synfp', '-d'],
    ['--synfp', '--check'],
  ]) {
    assert.equal(parseArgs(argv).mode, 'usage-error', argv.join(' '));
  }
  assert.match(USAGE, /--synfp/);
});

const SYN: SynInfo = {
  family: 6,
  srcIp: '2001:db8::7',
  srcPort: 40000,
  dstIp: '2001:db8::1',
  dstPort: 25,
  ttl: 60,
  df: 1,
  totalLength: 80,
  window: 5840,
  options: [{ kind: 'M', value: 1440 }],
  mss: 1440,
  quirks: [],
};

test('the output line: SOURCE FINGERPRINT OS distance N', () => {
  assert.equal(
    formatSynLine(SYN, { fp: '5840:60:1:80:M1440', os: 'Linux 2.6 (generic)', hops: 4 }),
    '[2001:db8::7]:40000 5840:60:1:80:M1440 Linux 2.6 (generic) distance 4',
  );
  assert.equal(
    formatSynLine({ ...SYN, family: 4, srcIp: '192.0.2.7' }, { fp: 'x', os: null, hops: 0 }),
    '192.0.2.7:40000 x unknown distance 0',
  );
});

test('runSynfp prints each SYN until stopped; exit 2 without CAP_NET_RAW, or when capture is not permitted', async () => {
  const out = sink(),
    err = sink();
  let options: CaptureOptions | null = null;
  let closed = false;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((r) => (stop = r));
  const run = runSynfp(
    { port: 2525, ip: '192.0.2.1', interfaces: ['eth0'] },
    testConfig({ synFpDb: ['/nonexistent/pf.os'] }),
    out,
    err,
    {
      netRaw: true,
      stop: stopped,
      capture: async (o) => {
        options = o;
        return {
          pid: 1,
          close: () => {
            closed = true;
          },
        };
      },
    },
  );
  await new Promise((r) => setImmediate(r));
  options!.onSyn(SYN);
  stop();
  assert.equal(await run, 0);
  assert.equal(out.text, '[2001:db8::7]:40000 5840:60:1:80:M1440 unknown distance 4\n');
  assert.deepEqual([options!.ports, options!.addresses, options!.interfaces], [[2525], ['192.0.2.1'], ['eth0']]);
  assert.ok(closed);
  assert.match(err.text, /cannot read SynFPDB/);

  const e2 = sink();
  assert.equal(
    await runSynfp({ port: 25, ip: null, interfaces: [] }, testConfig({}), sink(), e2, { netRaw: false }),
    2,
  );
  assert.match(e2.text, /needs CAP_NET_RAW/);
  const e3 = sink();
  const denied = (): Promise<never> =>
    Promise.reject(
      new CaptureError('permission', 'capturing SYNs needs CAP_NET_RAW (socket: Operation not permitted)'),
    );
  assert.equal(
    await runSynfp({ port: 25, ip: null, interfaces: [] }, testConfig({}), sink(), e3, {
      netRaw: true,
      capture: denied,
      stop: new Promise(() => {}),
    }),
    2,
  );
});

test('runSynfp: a capture that ends by itself is exit 1', async () => {
  const err = sink();
  const code = await runSynfp({ port: 25, ip: null, interfaces: [] }, testConfig({}), sink(), err, {
    netRaw: true,
    stop: new Promise(() => {}),
    capture: async (o) => {
      setTimeout(() => o.onExit?.('helper killed'), 10);
      return { pid: 1, close: () => {} };
    },
  });
  assert.equal(code, 1);
  assert.match(err.text, /the capture ended: helper killed/);
});
