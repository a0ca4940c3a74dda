/*
 * check-host.test.ts — behaviour beyond the suites: evaluatePolicy, SPFLocal, SPFHostsFile,
 * the per-check cache, the overall timeout, HELO checks, Received-SPF.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHelo, checkHost, checkMailFrom, evaluatePolicy, parseLocalPolicy } from './check-host.js';
import { receivedSpf } from './received-spf.js';
import { MemoryResolver, Zone } from './testing/zone.js';
import type { SpfResolver } from './resolver.js';
import { SpfSyntaxError } from './macro.js';

function zone(data: Record<string, Array<[string, unknown]>>): MemoryResolver {
  const z = new Zone();
  for (const [owner, list] of Object.entries(data)) {
    for (const [type, value] of list) {
      if (type === 'TXT') z.add(owner, { type: 'TXT', strings: Array.isArray(value) ? value : [String(value)] });
      else if (type === 'MX')
        z.add(owner, {
          type: 'MX',
          priority: (value as [number, string])[0],
          exchange: (value as [number, string])[1],
        });
      else if (type === 'TIMEOUT') z.add(owner, { type: 'TIMEOUT' });
      else z.add(owner, { type: type as 'A', value: String(value) });
    }
  }
  return new MemoryResolver(z);
}

const resolver = zone({
  'example.com': [
    ['TXT', 'v=spf1 ip4:198.51.100.1 -all'],
    ['A', '198.51.100.1'],
  ],
  'relay.example.net': [['A', '192.0.2.77']],
  'inc.example.com': [['TXT', 'v=spf1 include:inner.example.com ~all']],
  'inner.example.com': [['TXT', 'v=spf1 ip4:198.51.100.2 -all']],
  'redir.example.com': [['TXT', 'v=spf1 redirect=example.com']],
  'noall.example.com': [['TXT', 'v=spf1 ip4:198.51.100.3']],
  'nospf.example.com': [['A', '192.0.2.1']],
  'trusted.example': [['TXT', 'v=spf1 ip4:203.0.113.0/24 -all']],
  'slow.example': [['TIMEOUT', true]],
  'many.example.com': [
    ['TXT', 'v=spf1 a a a mx mx a:many.example.com ptr -all'],
    ['A', '192.0.2.200'],
    ['MX', [10, 'many.example.com']],
  ],
  'mail.example.org': [
    ['TXT', 'v=spf1 a -all'],
    ['A', '192.0.2.10'],
  ],
});

test('evaluatePolicy: a record string for the current client', async () => {
  const ctx = { resolver, ip: '192.0.2.77', sender: 'user@example.com', helo: 'mail.example.org' };
  assert.equal((await evaluatePolicy('ip4:192.0.2.0/24 -all', ctx)).result, 'pass');
  assert.equal((await evaluatePolicy('v=spf1 a:relay.example.net -all', ctx)).result, 'pass');
  const r = await evaluatePolicy('ip4:198.51.100.0/24 -all', ctx);
  assert.equal(r.result, 'fail');
  assert.equal(r.explanation, 'example.com does not designate 192.0.2.77 as permitted sender');
  assert.equal(r.mechanism, '-all');
  assert.equal(
    (await evaluatePolicy('a -all', { ...ctx, ip: '198.51.100.1' })).result,
    'pass',
    'a uses the sender domain',
  );
  assert.equal(
    (await evaluatePolicy('a -all', { ...ctx, sender: '', ip: '192.0.2.10' })).result,
    'pass',
    'empty sender: HELO domain',
  );
  assert.equal((await evaluatePolicy('ip4:1.2.3.4/33', ctx)).result, 'permerror');
  assert.equal((await evaluatePolicy('', ctx)).result, 'neutral');
});

test('SPFLocal: before the final all, on the redirect chain, not inside includes', async () => {
  const local = 'ip4:192.0.2.0/24 include:trusted.example';
  const o = { resolver, local };
  let r = await checkHost('192.0.2.9', 'example.com', 'a@example.com', o);
  assert.equal(r.result, 'pass');
  assert.equal(r.local, true);
  assert.equal(r.mechanism, 'ip4:192.0.2.0/24');
  assert.equal((await checkHost('203.0.113.5', 'example.com', 'a@example.com', o)).result, 'pass', 'local include');
  assert.equal(
    (await checkHost('198.51.100.1', 'example.com', 'a@example.com', o)).local,
    undefined,
    'the sender record matched first',
  );
  assert.equal((await checkHost('10.0.0.1', 'example.com', 'a@example.com', o)).result, 'fail');
  // include's own -all does not get the local terms: inner fails, include does not match, then local before ~all
  r = await checkHost('192.0.2.9', 'inc.example.com', 'a@inc.example.com', o);
  assert.equal(r.result, 'pass');
  assert.equal(r.local, true);
  assert.equal(
    (await checkHost('192.0.2.9', 'redir.example.com', 'a@redir.example.com', o)).result,
    'pass',
    'redirect target',
  );
  assert.equal(
    (await checkHost('192.0.2.9', 'noall.example.com', 'a@noall.example.com', o)).result,
    'pass',
    'before the default',
  );
  assert.equal(
    (await checkHost('192.0.2.9', 'nospf.example.com', 'a@nospf.example.com', o)).result,
    'none',
    'no policy, no local',
  );
  // local errors are ignored; the sender's policy stands
  const broken = await checkHost('192.0.2.9', 'example.com', 'a@example.com', { resolver, local: 'a:slow.example' });
  assert.equal(broken.result, 'fail');
  assert.throws(() => parseLocalPolicy('ip4:192.0.2.0/33'), SpfSyntaxError);
  assert.throws(() => parseLocalPolicy('redirect=example.com'), SpfSyntaxError);
});

test('SPFHostsFile: a record for domains that publish none', async () => {
  const hostsRecord = (d: string): string | undefined =>
    d === 'nospf.example.com' ? 'ip4:192.0.2.0/24 -all' : undefined;
  assert.equal(
    (await checkHost('192.0.2.9', 'nospf.example.com', 'a@nospf.example.com', { resolver, hostsRecord })).result,
    'pass',
  );
  assert.equal(
    (await checkHost('10.0.0.9', 'nospf.example.com', 'a@nospf.example.com', { resolver, hostsRecord })).result,
    'fail',
  );
  assert.equal(
    (await checkHost('192.0.2.9', 'example.com', 'a@example.com', { resolver, hostsRecord })).result,
    'fail',
    'published record wins',
  );
});

test('per-check cache: each name and type is asked once', async () => {
  const counting = zone({
    'many.example.com': [
      ['TXT', 'v=spf1 a a a mx mx a:many.example.com ptr:many.example.com -all'],
      ['A', '192.0.2.200'],
      ['MX', [10, 'many.example.com']],
    ],
  });
  const r = await checkHost('10.1.1.1', 'many.example.com', 'x@many.example.com', { resolver: counting });
  assert.equal(r.result, 'fail');
  assert.equal(r.dnsTerms, 7);
  // TXT, A, MX, PTR(reverse) — the reverse fails (NXDOMAIN) so no validation lookups
  assert.equal(counting.queries, 4);
  assert.equal(r.queries, 4);
});

test('overall timeout turns pending lookups into temperror', async () => {
  const never: SpfResolver = {
    resolveTxt: () => new Promise(() => undefined),
    resolveMx: () => new Promise(() => undefined),
    resolve4: () => new Promise(() => undefined),
    resolve6: () => new Promise(() => undefined),
    reverse: () => new Promise(() => undefined),
  };
  const t0 = Date.now();
  const r = await checkHost('192.0.2.1', 'example.com', 'a@example.com', { resolver: never, timeoutMs: 50 });
  assert.equal(r.result, 'temperror');
  assert.match(r.problem ?? '', /ETIMEOUT/);
  assert.ok(Date.now() - t0 < 2000);
  const thrower: SpfResolver = {
    ...never,
    resolveTxt: () => {
      throw Object.assign(new Error('x'), { code: 'ESERVFAIL' });
    },
  };
  assert.equal(
    (await checkHost('192.0.2.1', 'example.com', 'a@example.com', { resolver: thrower })).result,
    'temperror',
  );
});

test('identities: HELO, null sender, malformed domains', async () => {
  assert.equal((await checkHelo('192.0.2.10', 'mail.example.org', { resolver })).result, 'pass');
  assert.equal((await checkMailFrom('192.0.2.10', '<>', 'mail.example.org', { resolver })).result, 'pass');
  assert.equal(
    (await checkMailFrom('192.0.2.10', '', 'mail.example.org', { resolver })).sender,
    'postmaster@mail.example.org',
  );
  for (const d of ['[192.0.2.1]', 'localhost', 'a..example.com', '192.0.2.1', `${'x'.repeat(64)}.example.com`]) {
    assert.equal((await checkHelo('192.0.2.10', d, { resolver })).result, 'none', d);
  }
  await assert.rejects(() => checkHost('not-an-ip', 'example.com', 'a@example.com', { resolver }), TypeError);
});

test('Received-SPF (RFC 7208 §9.1)', async () => {
  const r = await checkMailFrom('192.0.2.10', 'myname@mail.example.org', 'foo.example.com', { resolver });
  const h = receivedSpf(r, {
    ip: '192.0.2.10',
    envelopeFrom: 'myname@mail.example.org',
    helo: 'foo.example.com',
    receiver: 'mybox.example.org',
  });
  assert.equal(
    h,
    'Received-SPF: pass (mybox.example.org: domain of myname@mail.example.org designates 192.0.2.10 as permitted sender) ' +
      'client-ip=192.0.2.10; envelope-from="myname@mail.example.org"; helo=foo.example.com; receiver=mybox.example.org; identity=mailfrom; mechanism=a;',
  );
  const bad = receivedSpf(
    {
      result: 'permerror',
      problem: 'bad "x" (y)',
      domain: 'e.example',
      sender: 'a@e.example',
      dnsTerms: 0,
      voidLookups: 0,
      queries: 1,
    },
    { ip: '2001:db8::1', envelopeFrom: 'a@e.example', helo: 'evil\r\nX-Injected: 1', identity: 'mailfrom' },
  );
  assert.ok(!/[\r\n]/.test(bad));
  assert.match(bad, /client-ip="2001:db8::1"/);
  assert.match(bad, /problem="bad \\"x\\" \(y\)"/);
  assert.match(bad, /\(unknown: permanent error in processing domain of a@e\.example: bad "x" \\\(y\\\)\)/);
  const folded = receivedSpf(
    r,
    { ip: '192.0.2.10', envelopeFrom: 'myname@mail.example.org', helo: 'foo.example.com' },
    { foldWidth: 78 },
  );
  for (const line of folded.split('\r\n')) assert.ok(line.length <= 78, line);
  assert.equal(
    folded.replace(/\r\n\t/g, ' '),
    receivedSpf(r, { ip: '192.0.2.10', envelopeFrom: 'myname@mail.example.org', helo: 'foo.example.com' }),
  );
  const helo = receivedSpf(r, { ip: '192.0.2.10', envelopeFrom: '', helo: 'mail.example.org', identity: 'helo' });
  assert.match(helo, /domain of mail\.example\.org designates/);
  assert.match(helo, /envelope-from=""; /);
});
