import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SpfResolver } from '@asmtpd/spf';
import { reverseNameToIp, runHelper } from './script-helper-commands.js';
import { helperEnvironment, parseHelperDns } from '../daemon/script-helper-env.js';

type Answer = unknown[] | string; // a string is an error code
const err = (code: string): Error => Object.assign(new Error(code), { code });

/** An in-memory resolver: zone[`TYPE name`] = answers or an error code; anything else NXDOMAIN. */
function fakeResolver(zone: Record<string, Answer>): SpfResolver {
  const get = async <T>(type: string, name: string): Promise<T> => {
    const a = zone[`${type} ${name.toLowerCase()}`];
    if (a === undefined) throw err('ENOTFOUND');
    if (typeof a === 'string') throw err(a);
    return a as T;
  };
  return {
    resolve4: (n) => get('A', n),
    resolve6: (n) => get('AAAA', n),
    resolveMx: (n) => get('MX', n),
    resolveTxt: (n) => get('TXT', n),
    reverse: (ip) => get('PTR', ip),
  };
}

const DNS_ENV = helperEnvironment({
  dnsResolver: 'system',
  dnsServers: [{ host: '127.0.0.1', port: 5353, text: '127.0.0.1:5353' }],
  dnsProtocol: 'https',
  dnsTimeoutMs: 3000,
  hostname: 'mx.test',
});

async function run(
  argv: string[],
  zone: Record<string, Answer>,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let errText = '';
  const code = await runHelper(
    argv,
    { ...DNS_ENV, ...env },
    { out: (t) => (out += t), err: (t) => (errText += t) },
    () => fakeResolver(zone),
  );
  return { code, out, err: errText };
}

test('helperEnvironment and parseHelperDns agree', () => {
  assert.equal(DNS_ENV.ASMTPD_NODE, process.execPath);
  assert.match(DNS_ENV.ASMTPD_HELPER!, /\/dist\/cli\/script-helper\.js$/);
  assert.deepEqual(parseHelperDns(DNS_ENV.ASMTPD_DNS), {
    kind: 'system',
    servers: [{ host: '127.0.0.1', port: 5353, text: '127.0.0.1:5353' }],
    protocol: 'https',
    timeoutMs: 3000,
    receiver: 'mx.test',
  });
  for (const bad of [undefined, '', '{', '{}', '{"kind":"system","protocol":"http","timeoutMs":1,"servers":["nope"]}'])
    assert.throws(() => parseHelperDns(bad));
});

test('reverseNameToIp', () => {
  assert.equal(reverseNameToIp('4.3.2.1.in-addr.arpa.'), '1.2.3.4');
  assert.equal(
    reverseNameToIp('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.IP6.ARPA'),
    '2001:0db8:0000:0000:0000:0000:0000:0001',
  );
  assert.equal(reverseNameToIp('300.3.2.1.in-addr.arpa'), null);
  assert.equal(reverseNameToIp('example.org'), null);
});

test('dns: answers one a line, MX by preference, TXT strings joined, control characters shown as spaces', async () => {
  const zone: Record<string, Answer> = {
    'A a.example': ['192.0.2.1', '192.0.2.2'],
    'MX a.example': [
      { priority: 20, exchange: 'b.example' },
      { priority: 10, exchange: 'a.example' },
    ],
    'MX null.example': [{ priority: 0, exchange: '' }],
    'TXT a.example': [['v=spf1 ', '-all'], ['x\ny']],
    'PTR 192.0.2.1': ['host.a.example.'],
  };
  assert.deepEqual(await run(['dns', '-t', 'A', 'a.example'], zone), {
    code: 0,
    out: '192.0.2.1\n192.0.2.2\n',
    err: '',
  });
  assert.deepEqual(await run(['dns', 'a.example'], zone), { code: 0, out: '192.0.2.1\n192.0.2.2\n', err: '' });
  assert.equal((await run(['dns', '-tmx', 'a.example'], zone)).out, '10:a.example\n20:b.example\n');
  assert.equal((await run(['dns', '-t', 'MX', 'null.example'], zone)).out, '0:.\n');
  assert.equal((await run(['dns', '-t', 'TXT', 'A.example'], zone)).out, 'v=spf1 -all\nx y\n');
  assert.equal((await run(['dns', '-t', 'PTR', '192.0.2.1'], zone)).out, 'host.a.example\n');
  assert.equal((await run(['dns', '-t', 'PTR', '1.2.0.192.in-addr.arpa'], zone)).out, 'host.a.example\n');
});

test('dns: exit 1 for no answer, 2 for a temporary failure or bad usage', async () => {
  const zone: Record<string, Answer> = {
    'A nodata.example': 'ENODATA',
    'A empty.example': [],
    'A slow.example': 'ETIMEOUT',
    'A broken.example': 'ESERVFAIL',
  };
  assert.deepEqual(await run(['dns', '-t', 'A', 'nx.example'], zone), { code: 1, out: '', err: '' });
  assert.equal((await run(['dns', '-t', 'A', 'nodata.example'], zone)).code, 1);
  assert.equal((await run(['dns', '-t', 'A', 'empty.example'], zone)).code, 1);
  const slow = await run(['dns', '-t', 'A', 'slow.example'], zone);
  assert.equal(slow.code, 2);
  assert.match(slow.err, /temporary failure \(ETIMEOUT\)/);
  assert.equal((await run(['dns', '-t', 'A', 'broken.example'], zone)).code, 2);
  for (const argv of [
    ['dns'],
    ['dns', '-t', 'SRV', 'x'],
    ['dns', '-t'],
    ['dns', 'a', 'b'],
    ['dns', '-x', 'a'],
    ['dns', '-t', 'PTR', 'example.org'],
    ['dns', 'a b'],
  ]) {
    const r = await run(argv, zone);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, /^dns: /);
  }
  assert.equal((await run(['dns', 'a.example'], zone, { ASMTPD_DNS: '' })).code, 2);
  assert.equal((await run(['nslookup', 'a.example'], zone)).code, 2);
});

test('rbl: 0 listed (ZONE REASON lines), 1 not listed, 2 when every lookup failed or bad usage', async () => {
  const zone: Record<string, Answer> = {
    'A 2.2.0.192.bl.example': ['127.0.0.2'],
    'TXT 2.2.0.192.bl.example': [['spam\r\nsource']],
    'A 2.2.0.192.notxt.example': ['127.0.0.3'],
    'A 2.2.0.192.dead.example': 'ETIMEOUT',
    'A 2.2.0.192.refusing.example': ['127.255.255.254'],
    'A 2.2.0.192.odd.example': ['10.0.0.1'],
  };
  const ip = { CLIENT_IP: '192.0.2.2' };
  assert.deepEqual(await run(['rbl', 'bl.example', 'clean.example', 'notxt.example'], zone, ip), {
    code: 0,
    out: 'bl.example spam source\nnotxt.example listed by notxt.example\n',
    err: '',
  });
  assert.equal((await run(['rbl', 'clean.example'], zone, ip)).code, 1);
  assert.equal((await run(['rbl', 'clean.example', 'dead.example'], zone, ip)).code, 1);
  assert.equal((await run(['rbl', 'odd.example'], zone, ip)).code, 1);
  const dead = await run(['rbl', 'dead.example', 'refusing.example'], zone, ip);
  assert.equal(dead.code, 2);
  assert.match(dead.err, /dead\.example: lookup failed \(ETIMEOUT\)/);
  assert.match(
    dead.err,
    /refusing\.example: refused the query \(127\.255\.255\.254\): query through a public or open resolver\n/,
  );
  assert.equal((await run(['rbl'], zone, ip)).code, 2);
  assert.equal((await run(['rbl', 'bad..zone'], zone, ip)).code, 2);
  assert.equal((await run(['rbl', 'bl.example'], zone, { CLIENT_IP: 'nope' })).code, 2);
});

test('spf: the result word; 0 pass, 1 other results, 2 bad usage', async () => {
  const zone: Record<string, Answer> = { 'A relay.example': ['192.0.2.7'] };
  const env = { CLIENT_IP: '192.0.2.7', SENDER: 'bob@sender.example', CLIENT_HELO: 'helo.example' };
  assert.deepEqual(await run(['spf', 'a:relay.example', '-all'], zone, env), { code: 0, out: 'pass\n', err: '' });
  assert.deepEqual(await run(['spf', 'v=spf1 ip4:198.51.100.0/24 -all'], zone, env), {
    code: 1,
    out: 'fail\n',
    err: '',
  });
  assert.deepEqual(await run(['spf', 'ip4:198.51.100.0/24', '~all'], zone, env), {
    code: 1,
    out: 'softfail\n',
    err: '',
  });
  assert.deepEqual(await run(['spf', 'a:relay.example'], zone, { ...env, SENDER: '' }), {
    code: 0,
    out: 'pass\n',
    err: '',
  });
  for (const argv of [['spf'], ['spf', 'foo:bar'], ['spf', 'ip4:1.2.3.4/40']])
    assert.equal((await run(argv, zone, env)).code, 2, argv.join(' '));
  assert.equal((await run(['spf', '+all'], zone, { ...env, CLIENT_IP: '' })).code, 2);
});
