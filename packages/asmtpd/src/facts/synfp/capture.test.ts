import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo } from 'node:net';
import { CaptureError, normalizeIp, startSynCapture } from './capture.js';
import type { SynInfo } from './syn-packet.js';
import { CAP_NET_RAW, hasCapability } from '../netfacts/capability.js';

test('normalizeIp: one text per address', () => {
  assert.equal(normalizeIp('192.0.2.1'), '192.0.2.1');
  assert.equal(normalizeIp('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(normalizeIp('::FFFF:c000:0201'), '192.0.2.1');
  assert.equal(normalizeIp('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1');
});

test('bad port lists are refused before anything starts', async () => {
  await assert.rejects(startSynCapture({ ports: [], onSyn: () => {} }), CaptureError);
  await assert.rejects(startSynCapture({ ports: [70000], onSyn: () => {} }), CaptureError);
});

const root = hasCapability(CAP_NET_RAW) ? false : 'needs CAP_NET_RAW (root)';

test(
  'captures loopback SYNs to the port, IPv4 and IPv6, with their TTL and options; the address filter',
  { skip: root },
  async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    const port = (server.address() as AddressInfo).port;
    const seen: SynInfo[] = [];
    const capture = await startSynCapture({
      ports: [port],
      addresses: ['127.0.0.1', '::1'],
      onSyn: (s) => seen.push(s),
    });
    try {
      const ports: number[] = [];
      for (const host of ['127.0.0.1', '::1', '127.0.0.2']) {
        ports.push(
          await new Promise<number>((resolve) => {
            const s = connect(port, host, () => {
              resolve(s.localPort!);
              s.destroy();
            });
          }),
        );
      }
      for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(
        seen.map((s) => [s.family, s.srcIp, s.srcPort, s.dstPort, s.ttl, s.df]),
        [
          [4, '127.0.0.1', ports[0], port, 64, 1],
          [6, '::1', ports[1], port, 64, 1],
        ],
      );
      assert.deepEqual(
        seen.map((s) => s.options.map((o) => o.kind).join('')),
        ['MSTNW', 'MSTNW'],
      );
      assert.deepEqual(
        seen.map((s) => s.totalLength),
        [60, 80],
      );
    } finally {
      capture.close();
      server.close();
    }
  },
);

test('an unknown interface is an error, not a crash', { skip: root }, async () => {
  await assert.rejects(
    startSynCapture({ ports: [25], interfaces: ['nosuchif0'], onSyn: () => {} }),
    (e: CaptureError) => e.code === 'interface',
  );
});
