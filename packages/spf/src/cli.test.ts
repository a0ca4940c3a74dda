/* cli.test.ts — spf-check argument parsing and the single-check output (no network: a DoH server on loopback). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { main, parseArgs } from './cli.js';
import { Zone } from './testing/zone.js';
import { startZoneServer } from './testing/dns-server.js';

async function capture(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const input = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  input.end(stdin);
  const code = await main(argv, { stdin: input, stdout, stderr });
  return { code, out, err };
}

test('arguments', async () => {
  const o = parseArgs([
    '--dns-server',
    '127.0.0.1:5353',
    '--dns-protocol=http',
    '--timeout',
    '300',
    '192.0.2.1',
    'a@example.com',
    'helo.example',
  ]);
  assert.deepEqual(o.servers, ['127.0.0.1:5353']);
  assert.equal(o.protocol, 'http');
  assert.equal(o.timeoutMs, 300);
  assert.deepEqual(o.positional, ['192.0.2.1', 'a@example.com', 'helo.example']);
  for (const bad of [
    ['--dns-protocol', 'udp'],
    ['--timeout', '0'],
    ['192.0.2.1'],
    ['--bogus'],
    ['a', 'b', 'c', 'd'],
    ['--timeout'],
  ]) {
    const r = await capture(bad);
    assert.equal(r.code, 2, bad.join(' '));
    assert.match(r.err, /usage: spf-check/);
  }
});

test('single check and batch through a loopback DoH server', async () => {
  const z = new Zone();
  z.add('example.com', { type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all exp=why.example.com'] });
  z.add('why.example.com', { type: 'TXT', strings: ["%{i} is not one of %{d}'s"] });
  const server = await startZoneServer(z, { doh: true });
  try {
    const dns = [
      '--dns-server',
      server.doh as string,
      '--dns-protocol',
      'http',
      '--timeout',
      '2000',
      '--receiver',
      'mx.example.net',
    ];
    const one = await capture([...dns, '198.51.100.1', 'user@example.com', 'helo.example']);
    assert.equal(one.code, 0, one.err);
    const lines = one.out.split('\n');
    assert.equal(lines[0], 'fail');
    assert.equal(lines[1], "198.51.100.1 is not one of example.com's");
    assert.equal(server.queries(), 2, 'the record, then the explanation');
    assert.match(
      lines[2] ?? '',
      /^Received-SPF: fail \(mx\.example\.net: domain of user@example\.com does not designate 198\.51\.100\.1 as permitted sender\) client-ip=198\.51\.100\.1;/,
    );
    const batch = await capture(
      dns,
      '192.0.2.5\tuser name@example.com\thelo with space\n198.51.100.1\t<>\texample.com\n\n192.0.2.6\tx@nowhere.example\th\n',
    );
    assert.equal(batch.code, 0, batch.err);
    assert.equal(batch.out, "pass\t\nfail\t198.51.100.1 is not one of example.com's\nnone\t\n");
  } finally {
    await server.close();
  }
});
