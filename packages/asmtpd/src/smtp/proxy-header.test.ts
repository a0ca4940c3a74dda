import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { parseV1, parseV2, readProxyHeader, startsWithProxyHeader, type ProxyHeaderResult } from './proxy-header.js';

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: version/command byte, family/transport byte, then the address block (and TLVs). */
function v2(verCmd: number, famProto: number, block: number[]): Buffer {
  return Buffer.from([...SIG, verCmd, famProto, block.length >> 8, block.length & 0xff, ...block]);
}
const port = (n: number): number[] => [n >> 8, n & 0xff];
const V6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x07];
const V6_DST = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x19];

test('v1: TCP4, TCP6 and UNKNOWN; anything else is invalid', () => {
  const cases: [string, ProxyHeaderResult['kind'], string][] = [
    ['PROXY TCP4 192.0.2.7 192.0.2.1 40001 25\r\n', 'proxied', '192.0.2.7:40001'],
    ['PROXY TCP6 2001:db8::7 2001:db8::1 40001 25\r\n', 'proxied', '2001:db8::7:40001'],
    ['PROXY UNKNOWN\r\n', 'local', ''],
    ['PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n', 'local', ''],
    ['PROXY TCP4 2001:db8::7 192.0.2.1 40001 25\r\n', 'refused', 'invalid'],
    ['PROXY TCP4 mail.example 192.0.2.1 40001 25\r\n', 'refused', 'invalid'],
    ['PROXY TCP4 192.0.2.7 192.0.2.1 70000 25\r\n', 'refused', 'invalid'],
    ['PROXY TCP4 192.0.2.7 192.0.2.1 40001\r\n', 'refused', 'invalid'],
    ['PROXY UDP4 192.0.2.7 192.0.2.1 40001 25\r\n', 'refused', 'invalid'],
  ];
  for (const [line, kind, what] of cases) {
    const r = parseV1(Buffer.from(line, 'latin1'));
    assert.equal(r.kind, kind, line);
    if (r.kind === 'proxied') assert.equal(`${r.client.ip}:${r.client.port}`, what, line);
    if (r.kind === 'refused') assert.equal(r.reason, what, line);
  }
});

test('v2: PROXY over IPv4 and IPv6 (with a TLV after the addresses), LOCAL, UNSPEC; UNIX and DGRAM refused', () => {
  const v4 = parseV2(v2(0x21, 0x11, [192, 0, 2, 7, 192, 0, 2, 1, ...port(40001), ...port(25)]));
  assert.deepEqual(v4, { kind: 'proxied', version: 2, client: { ip: '192.0.2.7', port: 40001 } });
  const noop = [0x04, 0x00, 0x02, 0x00, 0x00]; // PP2_TYPE_NOOP, 2 octets
  const v6 = parseV2(v2(0x21, 0x21, [...V6_SRC, ...V6_DST, ...port(40002), ...port(25), ...noop]));
  assert.deepEqual(v6, { kind: 'proxied', version: 2, client: { ip: '2001:db8::7', port: 40002 } });
  assert.deepEqual(parseV2(v2(0x20, 0x00, [])), { kind: 'local', version: 2 });
  assert.deepEqual(parseV2(v2(0x21, 0x00, [])), { kind: 'local', version: 2 });
  assert.equal(parseV2(v2(0x21, 0x31, new Array<number>(216).fill(0x41))).kind, 'refused');
  assert.equal(parseV2(v2(0x21, 0x12, [192, 0, 2, 7, 192, 0, 2, 1, ...port(1), ...port(2)])).kind, 'refused');
  assert.equal(parseV2(v2(0x11, 0x11, [192, 0, 2, 7, 192, 0, 2, 1, ...port(1), ...port(2)])).kind, 'refused');
  assert.equal(parseV2(v2(0x21, 0x11, [192, 0, 2, 7])).kind, 'refused', 'shorter than its addresses');
});

test('startsWithProxyHeader: v1 and v2 signatures, not SMTP', () => {
  assert.equal(startsWithProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), true);
  assert.equal(startsWithProxyHeader(Buffer.from(SIG)), true);
  assert.equal(startsWithProxyHeader(Buffer.from('EHLO proxy.example\r\n')), false);
  assert.equal(startsWithProxyHeader(Buffer.from('\r\n')), false);
});

/** readProxyHeader on a real socket pair: the peer writes `chunks` with a pause between them. */
async function readFrom(chunks: Buffer[], timeoutMs = 2000): Promise<{ r: ProxyHeaderResult; rest: string }> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const socket = await accepted;
  const result = new Promise<ProxyHeaderResult>((r) => readProxyHeader(socket, timeoutMs, r));
  for (const c of chunks) {
    client.write(c);
    await new Promise((r) => setTimeout(r, 30));
  }
  const r = await result;
  let rest = '';
  if (r.kind !== 'refused') {
    socket.on('data', (d: Buffer) => (rest += d.toString('latin1')));
    await new Promise((res) => setTimeout(res, 50));
  }
  client.destroy();
  socket.destroy();
  server.close();
  return { r, rest };
}

test('readProxyHeader: a header in pieces, and the bytes after it left for the session', async () => {
  const v1 = await readFrom([Buffer.from('PROXY TCP4 192.0'), Buffer.from('.2.7 192.0.2.1 40001 25\r\nEHLO x\r\n')]);
  assert.deepEqual(v1.r, { kind: 'proxied', version: 1, client: { ip: '192.0.2.7', port: 40001 } });
  assert.equal(v1.rest, 'EHLO x\r\n');
  const whole = v2(0x21, 0x11, [192, 0, 2, 8, 192, 0, 2, 1, ...port(40002), ...port(25)]);
  const two = await readFrom([whole.subarray(0, 14), Buffer.concat([whole.subarray(14), Buffer.from('QUIT\r\n')])]);
  assert.deepEqual(two.r, { kind: 'proxied', version: 2, client: { ip: '192.0.2.8', port: 40002 } });
  assert.equal(two.rest, 'QUIT\r\n');
});

test('readProxyHeader: no header, a line too long, a timeout, a close', async () => {
  const reason = async (chunks: Buffer[], timeoutMs?: number): Promise<string> => {
    const { r } = await readFrom(chunks, timeoutMs);
    return r.kind === 'refused' ? r.reason : r.kind;
  };
  assert.equal(await reason([Buffer.from('EHLO x\r\n')]), 'no-header');
  assert.equal(await reason([Buffer.from('PROXY TCP4 ' + '1'.repeat(120))]), 'invalid');
  assert.equal(await reason([Buffer.from('PROXY TCP4 192.0.2.7')], 200), 'timeout');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const socket = await accepted;
  const result = new Promise<ProxyHeaderResult>((r) => readProxyHeader(socket, 2000, r));
  client.end('PROXY ');
  const r = await result;
  assert.equal(r.kind === 'refused' ? r.reason : r.kind, 'closed');
  socket.destroy();
  server.close();
});
