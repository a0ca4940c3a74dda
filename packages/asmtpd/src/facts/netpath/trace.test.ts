import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TraceError, traceRouteDetail, type TraceResult } from './trace.js';
import { echoReply, fakeNetwork, icmpError, type Topology } from '../../testing/netpath.js';
import { buildEchoRequest } from './packets.js';

const route = (r: TraceResult): [number, string[], boolean] => [r.hops, r.path, r.reached];

const chain4: Topology = { family: 4, routers: ['10.0.1.1', '10.0.2.1'], destination: '198.51.100.7' };

test('every router in order, then the destination; hops = the TTL the destination answered at', async () => {
  const net = fakeNetwork(() => chain4);
  const started = Date.now();
  const r = await traceRouteDetail('198.51.100.7', { maxHops: 30, timeoutMs: 5000 }, net);
  assert.deepEqual(route(r), [3, ['10.0.1.1', '10.0.2.1', '198.51.100.7'], true]);
  assert.deepEqual(
    r.answers.map((a) => a?.kind),
    ['time-exceeded', 'time-exceeded', 'echo-reply'],
  );
  assert.ok(Date.now() - started < 1000, 'complete: no waiting for the timeout');
  assert.deepEqual(
    net.sent.map((s) => s.ttl),
    Array.from({ length: 30 }, (_, i) => i + 1),
    'one probe per TTL, all at once',
  );
  assert.equal(new Set(net.sent.map((s) => s.id)).size, 1);
  assert.deepEqual([net.opened, net.closed], [1, 1], 'the session is closed');
});

test('IPv6 and IPv4-mapped addresses', async () => {
  const v6: Topology = { family: 6, routers: ['fd00:1::1'], destination: '2001:db8::7' };
  const r6 = await traceRouteDetail(
    '2001:DB8:0::7',
    { maxHops: 8, timeoutMs: 2000 },
    fakeNetwork(() => v6),
  );
  assert.deepEqual(route(r6), [2, ['fd00:1::1', '2001:db8::7'], true]);
  const net = fakeNetwork(() => chain4);
  const r4 = await traceRouteDetail('::ffff:198.51.100.7', { maxHops: 8, timeoutMs: 2000 }, net);
  assert.deepEqual(route(r4), [3, ['10.0.1.1', '10.0.2.1', '198.51.100.7'], true]);
  assert.equal(net.sent[0]?.target, '198.51.100.7', 'probed over IPv4');
});

test('a silent router is `*`; its TTL is probed again in later rounds; the trace ends soon after the last round', async () => {
  const net = fakeNetwork(() => ({ family: 4, routers: ['10.0.1.1', null, '10.0.3.1'], destination: '198.51.100.7' }));
  const started = Date.now();
  const r = await traceRouteDetail('198.51.100.7', { maxHops: 10, timeoutMs: 2000 }, net);
  const ms = Date.now() - started;
  assert.deepEqual(route(r), [4, ['10.0.1.1', '*', '10.0.3.1', '198.51.100.7'], true]);
  assert.deepEqual(
    net.sent.filter((s) => s.ttl === 2).map((s) => s.seq >> 8),
    [0, 1, 2],
    'three rounds',
  );
  assert.equal(net.sent.filter((s) => s.ttl === 3).length, 1, 'answered TTLs are not probed again');
  assert.equal(net.sent.filter((s) => s.ttl === 5).length, 1, 'nor those beyond the destination');
  // rounds at 0, 500, 1000 ms (R = timeout / 4), then min(R, max(300 ms, 2 × RTT)) = 300 ms to answer
  assert.ok(ms >= 1280 && ms < 1900, `ended after the last round had time to answer, before the timeout (${ms} ms)`);
});

test('a probe lost in the first round is answered in the second', async () => {
  const net = fakeNetwork(() => ({ ...chain4, lostInFirstRound: [1, 3] }));
  const r = await traceRouteDetail('198.51.100.7', { maxHops: 5, timeoutMs: 2000 }, net);
  assert.deepEqual(route(r), [3, ['10.0.1.1', '10.0.2.1', '198.51.100.7'], true]);
  assert.equal(
    r.answers[0]?.rttMs !== undefined && r.answers[0].rttMs < 100,
    true,
    'the RTT is that of the probe answered, not of the first one sent',
  );
});

test('the route is longer than maxHops: hops = maxHops, not reached, as soon as every TTL answered', async () => {
  const started = Date.now();
  const r = await traceRouteDetail(
    '198.51.100.7',
    { maxHops: 2, timeoutMs: 3000 },
    fakeNetwork(() => chain4),
  );
  assert.deepEqual(route(r), [2, ['10.0.1.1', '10.0.2.1'], false]);
  assert.ok(Date.now() - started < 1000);
});

test('a silent destination: hops = the last TTL that got an answer, after the whole timeout', async () => {
  const started = Date.now();
  const r = await traceRouteDetail(
    '198.51.100.7',
    { maxHops: 6, timeoutMs: 400 },
    fakeNetwork(() => ({ ...chain4, destination: null })),
  );
  assert.deepEqual(route(r), [2, ['10.0.1.1', '10.0.2.1'], false]);
  assert.ok(Date.now() - started >= 390);
});

test('unreachable from a router ends the route there (not reached); from the destination it is reached', async () => {
  const r = await traceRouteDetail(
    '198.51.100.7',
    { maxHops: 6, timeoutMs: 1000 },
    fakeNetwork(() => ({ ...chain4, unreachable: true })),
  );
  assert.deepEqual(route(r), [2, ['10.0.1.1', '10.0.2.1'], false]);
  assert.equal(r.answers[1]?.kind, 'unreachable');
  const byDest = await traceRouteDetail(
    '198.51.100.7',
    { maxHops: 6, timeoutMs: 1000 },
    fakeNetwork(() => ({ family: 4, routers: ['10.0.1.1', '198.51.100.7'], destination: null, unreachable: true })),
  );
  assert.deepEqual(route(byDest), [2, ['10.0.1.1', '198.51.100.7'], true]);
});

test('no answer at all: TraceError no-answer at the timeout', async () => {
  const started = Date.now();
  await assert.rejects(
    traceRouteDetail(
      '198.51.100.7',
      { maxHops: 4, timeoutMs: 250 },
      fakeNetwork(() => ({ family: 4, routers: [null, null], destination: null })),
    ),
    (e: unknown) => e instanceof TraceError && e.code === 'no-answer' && /198\.51\.100\.7/.test(e.message),
  );
  assert.ok(Date.now() - started >= 240);
});

test('errors: not an address, no permission for a raw socket, a refused send', async () => {
  await assert.rejects(
    traceRouteDetail(
      'mx.example',
      { maxHops: 4, timeoutMs: 100 },
      fakeNetwork(() => chain4),
    ),
    (e: unknown) => e instanceof TraceError && e.code === 'bad-address',
  );
  await assert.rejects(
    traceRouteDetail(
      '198.51.100.7',
      { maxHops: 4, timeoutMs: 100 },
      fakeNetwork(() => ({ ...chain4, openError: 'Operation not permitted' })),
    ),
    (e: unknown) => e instanceof TraceError && e.code === 'permission' && /CAP_NET_RAW/.test(e.message),
  );
  const net = fakeNetwork(() => ({ ...chain4, sendError: 'Network is unreachable' }));
  await assert.rejects(
    traceRouteDetail('198.51.100.7', { maxHops: 4, timeoutMs: 5000 }, net),
    (e: unknown) => e instanceof TraceError && e.code === 'send' && /unreachable/.test(e.message),
  );
  assert.equal(net.closed, 1);
});

test("replies that are not this trace's are ignored: other nonce, other target, a seq never sent", async () => {
  let injectStray: (() => void) | null = null;
  const net = fakeNetwork(() => ({ ...chain4, delayMs: 30 }));
  const opened = net.open.bind(net);
  net.open = (family, onReply, onError) => {
    const s = opened(family, onReply, onError);
    injectStray = () => {
      // same id, but another trace's nonce / another destination / an unsent seq: none may count
      const nonce = net.sent[0]!.nonce;
      const wrongNonce = buildEchoRequest(4, { id: s.id, seq: 3, nonce: nonce ^ 1 });
      const otherTarget = buildEchoRequest(4, { id: s.id, seq: 1, nonce });
      net.inject(4, icmpError(4, 'time-exceeded', otherTarget, '10.9.9.9', '203.0.113.1'), '10.9.9.9');
      net.inject(4, echoReply(4, wrongNonce, '203.0.113.1'), '203.0.113.1');
      net.inject(4, echoReply(4, buildEchoRequest(4, { id: s.id, seq: 0x700, nonce }), '203.0.113.1'), '203.0.113.1');
    };
    return s;
  };
  const p = traceRouteDetail('198.51.100.7', { maxHops: 5, timeoutMs: 2000 }, net);
  await new Promise((r) => setTimeout(r, 5));
  injectStray!();
  assert.deepEqual(route(await p), [3, ['10.0.1.1', '10.0.2.1', '198.51.100.7'], true]);
});

test('concurrent traces on one network do not mix: each has its own id', async () => {
  const topo: Record<string, Topology> = {
    '198.51.100.7': chain4,
    '203.0.113.9': {
      family: 4,
      routers: ['10.0.1.1', '10.5.5.5', null, '10.6.6.6'],
      destination: '203.0.113.9',
      delayMs: 5,
    },
    '2001:db8::7': { family: 6, routers: ['fd00::1'], destination: '2001:db8::7', delayMs: 3 },
  };
  const net = fakeNetwork((t) => topo[t] ?? chain4);
  const targets = ['198.51.100.7', '203.0.113.9', '2001:db8::7', '198.51.100.7', '203.0.113.9'];
  const rs = await Promise.all(targets.map((t) => traceRouteDetail(t, { maxHops: 8, timeoutMs: 400 }, net)));
  assert.deepEqual(
    rs.map((r) => r.path),
    [
      ['10.0.1.1', '10.0.2.1', '198.51.100.7'],
      ['10.0.1.1', '10.5.5.5', '*', '10.6.6.6', '203.0.113.9'],
      ['fd00::1', '2001:db8::7'],
      ['10.0.1.1', '10.0.2.1', '198.51.100.7'],
      ['10.0.1.1', '10.5.5.5', '*', '10.6.6.6', '203.0.113.9'],
    ],
  );
  assert.equal(new Set(net.sent.map((s) => s.id)).size, 5);
  assert.deepEqual([net.opened, net.closed], [5, 5]);
});
