/**
 * `asmtpd --netpath` and traceRoute over a real routed chain of network namespaces
 * (support/netns-route.ts): server ── r2 ── r1 ── client, traced from the server.
 * Shows: the router addresses in order and the hop count for IPv4 and IPv6, HOPS limiting the
 * trace, a router without a route (unreachable), the loopback (1 hop), many concurrent traces in
 * one process (each gets its own route), and exit 2 without CAP_NET_RAW.
 * The routers' ICMP rate limits are off here, so the many traces of this file are all answered
 * (netpath-silent.test.ts keeps a silent router and a silent client).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ASMTPD_BIN } from '../support/daemon.js';
import { createRouteLab, LAB, routeLabUnavailable, type RouteLab } from '../support/netns-route.js';

const unavailable = routeLabUnavailable();
const skip = unavailable ?? false;
let lab: RouteLab;

before(() => {
  if (!unavailable) lab = createRouteLab();
});

after(() => lab?.close());

const netpath = (...args: string[]) => lab.run('server', [process.execPath, ASMTPD_BIN, '--netpath', ...args]);

test('IPv4: the routers in order, then the client; hops 3', { skip }, async () => {
  const r = await netpath(LAB.client.v4);
  assert.equal(r.err, '');
  assert.equal(r.out, `hops: 3\n1 ${LAB.r2.v4}\n2 ${LAB.r1.v4}\n3 ${LAB.client.v4}\n`);
  assert.equal(r.code, 0);
});

test('IPv6: the same chain over ICMPv6 and IPV6_UNICAST_HOPS', { skip }, async () => {
  const r = await netpath(LAB.client.v6);
  assert.equal(r.err, '');
  assert.equal(r.out, `hops: 3\n1 ${LAB.r2.v6}\n2 ${LAB.r1.v6}\n3 ${LAB.client.v6}\n`);
  assert.equal(r.code, 0);
});

test('a router as the destination; HOPS shorter than the route', { skip }, async () => {
  const router = await netpath(LAB.r1.v4);
  assert.equal(router.out, `hops: 2\n1 ${LAB.r2.v4}\n2 ${LAB.r1.v4}\n`);
  const short = await netpath(LAB.client.v4, '2');
  assert.equal(short.out, `hops: 2 (destination not reached)\n1 ${LAB.r2.v4}\n2 ${LAB.r1.v4}\n`);
  assert.equal(short.code, 0);
});

test('a router without a route answers unreachable: the route ends there', { skip }, async () => {
  const r = await netpath('10.77.9.9');
  assert.equal(r.out, `hops: 1 (destination not reached)\n1 ${LAB.r2.v4}\n`);
  assert.equal(r.code, 0);
});

test('the loopback is 1 hop: the destination answers the first probe', { skip }, async () => {
  for (const [address, expected] of [
    ['127.0.0.1', 'hops: 1\n1 127.0.0.1\n'],
    ['::1', 'hops: 1\n1 ::1\n'],
    [LAB.server.v4, `hops: 1\n1 ${LAB.server.v4}\n`],
  ]) {
    const r = await netpath(address!);
    assert.equal(r.out, expected, address);
    assert.equal(r.code, 0);
  }
});

test('concurrent traces in one process and in two processes do not confuse each other', { skip }, async () => {
  const targets = [
    LAB.client.v4,
    LAB.r1.v4,
    LAB.client.v6,
    LAB.r2.v6,
    '127.0.0.1',
    LAB.client.v4,
    LAB.r1.v6,
    LAB.client.v6,
  ];
  const traceModule = new URL('../../../packages/asmtpd/dist/facts/netpath/trace.js', import.meta.url).href;
  const script = `
    import { traceRoute } from ${JSON.stringify(traceModule)};
    const targets = ${JSON.stringify(targets)};
    const routes = await Promise.all(targets.map((ip) => traceRoute(ip, { maxHops: 10, timeoutMs: 5000 })));
    console.log(JSON.stringify(routes));`;
  const [a, b] = await Promise.all(
    [1, 2].map(() => lab.run('server', [process.execPath, '--input-type=module', '-e', script])),
  );
  const expected = [
    { hops: 3, path: [LAB.r2.v4, LAB.r1.v4, LAB.client.v4] },
    { hops: 2, path: [LAB.r2.v4, LAB.r1.v4] },
    { hops: 3, path: [LAB.r2.v6, LAB.r1.v6, LAB.client.v6] },
    { hops: 1, path: [LAB.r2.v6] },
    { hops: 1, path: ['127.0.0.1'] },
    { hops: 3, path: [LAB.r2.v4, LAB.r1.v4, LAB.client.v4] },
    { hops: 2, path: [LAB.r2.v6, LAB.r1.v6] },
    { hops: 3, path: [LAB.r2.v6, LAB.r1.v6, LAB.client.v6] },
  ];
  for (const r of [a!, b!]) {
    assert.equal(r.err, '');
    assert.deepEqual(JSON.parse(r.out), expected);
  }
});

test('without CAP_NET_RAW: exit 2 and a clear message', { skip }, async () => {
  const r = await lab.run('server', [
    'runuser',
    '-u',
    'nobody',
    '--',
    process.execPath,
    ASMTPD_BIN,
    '--netpath',
    LAB.client.v4,
  ]);
  assert.equal(r.out, '');
  assert.match(
    r.err,
    /^asmtpd: --netpath: cannot open a raw ICMP socket: Operation not permitted \(needs CAP_NET_RAW\)\n$/,
  );
  assert.equal(r.code, 2);
});

test('bad usage: exit 2', { skip }, async () => {
  const r = await netpath('not-an-address');
  assert.equal(r.code, 2);
  assert.match(r.err, /not an IP address/);
});
