import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SpfResolver } from '@asmtpd/spf';
import { parseConfigText } from '../config/load.js';
import { nullLogger } from '../log/logger.js';
import { createClientFacts } from './client-facts.js';

function config(extra = '') {
  const r = parseConfigText(`Hostname mx.test\nSMTPCB no\nSynFP no\nRBL bl.test\n${extra}`, 'test.conf', {
    systemHostname: 'mx.test',
  });
  if (r.kind !== 'ok') throw new Error(JSON.stringify(r.errors));
  return r.config;
}

/** A resolver that records every lookup and answers at once. */
function recordingResolver(): SpfResolver & { calls: string[] } {
  const calls: string[] = [];
  const nx = (name: string) => Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
  return {
    calls,
    reverse: async (ip) => {
      calls.push(`PTR ${ip}`);
      return ['client.test'];
    },
    resolve4: (name) => {
      calls.push(`A ${name}`);
      return name === 'client.test' ? Promise.resolve(['192.0.2.7']) : nx(name);
    },
    resolve6: (name) => {
      calls.push(`AAAA ${name}`);
      return nx(name);
    },
    resolveTxt: (name) => {
      calls.push(`TXT ${name}`);
      return nx(name);
    },
    resolveMx: (name) => {
      calls.push(`MX ${name}`);
      return nx(name);
    },
  };
}

test('connect facts start right after connected() returns, not inside it (the banner is written first)', async () => {
  const resolver = recordingResolver();
  const facts = createClientFacts('192.0.2.7', {
    config: config(),
    resolver,
    prober: null,
    isOwnDomain: () => false,
    log: nullLogger(),
  });
  facts.connected(40000);
  assert.equal(
    resolver.calls.length,
    0,
    `no lookup during the call (the caller sends the 220 after it): ${resolver.calls.join(', ')}`,
  );
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(resolver.calls.includes('PTR 192.0.2.7'), `reverse lookup started: ${resolver.calls.join(', ')}`);
  assert.ok(resolver.calls.includes('A 7.2.0.192.bl.test'), `DNSBL lookup started: ${resolver.calls.join(', ')}`);
  const v = await facts.settle();
  assert.deepEqual(v.reverse, { name: 'client.test', ptr: 'client.test', tempfail: false });
  assert.deepEqual(v.rbl, { score: 0, listed: [], problems: [] });
});

test('settle() called at once after connected() still sees the connect facts', async () => {
  const resolver = recordingResolver();
  const facts = createClientFacts('192.0.2.7', {
    config: config(),
    resolver,
    prober: null,
    isOwnDomain: () => false,
    log: nullLogger(),
  });
  facts.connected(40000);
  facts.mailFrom('someone@sender.test', 'client.test');
  const v = await facts.settle();
  assert.equal(v.reverse?.name, 'client.test');
  assert.notEqual(v.rbl, null);
  assert.equal(v.spf?.result, 'none', 'no TXT record: SPF none');
  assert.equal(v.spfHelo?.result, 'none');
});

test('MAIL-time facts start right after mailFrom() returns (the MAIL reply is written first), and settle() sees them', async () => {
  const resolver = recordingResolver();
  const facts = createClientFacts('192.0.2.7', {
    config: config(),
    resolver,
    prober: null,
    isOwnDomain: () => false,
    log: nullLogger(),
  });
  facts.connected(40000);
  await facts.settle();
  const before = resolver.calls.length;
  facts.mailFrom('s@sender.test', 'helo.test');
  assert.deepEqual(resolver.calls.slice(before), [], 'no lookup during the call');
  const v = await facts.settle();
  assert.ok(resolver.calls.includes('TXT sender.test'), `MAIL FROM SPF checked: ${resolver.calls.join(', ')}`);
  assert.ok(resolver.calls.includes('TXT helo.test'), `HELO SPF checked: ${resolver.calls.join(', ')}`);
  assert.equal(v.spf?.result, 'none');
  assert.equal(v.spfHelo?.result, 'none');
});

test("a client named by a PROXY header (tcpPeer false) gets no SYN and no route: they would be the proxy's", async () => {
  const asked: string[] = [];
  const net = {
    syn: async (ip: string, port: number) => {
      asked.push(`syn ${ip}:${port}`);
      return { fp: '64240:64:1:60:M1460', os: 'Linux', hops: 0 };
    },
    route: async (ip: string) => {
      asked.push(`route ${ip}`);
      return null;
    },
  };
  const deps = {
    config: config(),
    resolver: recordingResolver(),
    prober: null,
    isOwnDomain: () => false,
    net,
    log: nullLogger(),
  };
  const proxied = createClientFacts('192.0.2.7', deps);
  proxied.connected(40000, { tcpPeer: false });
  const p = await proxied.settle();
  assert.equal(p.syn, null);
  assert.equal(p.route, null);
  assert.deepEqual(asked, []);
  assert.notEqual(p.reverse, null, "the DNS facts are the client's as before");
  const direct = createClientFacts('192.0.2.7', deps);
  direct.connected(40000);
  const d = await direct.settle();
  assert.equal(d.syn?.os, 'Linux');
  assert.deepEqual(asked, ['syn 192.0.2.7:40000', 'route 192.0.2.7']);
});
