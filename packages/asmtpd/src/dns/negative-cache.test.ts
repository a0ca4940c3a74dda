import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  NegativeCache,
  negativeAnswer,
  recordNegativeAnswers,
  withNegativeCache,
  type LookupBackend,
  type NegativeCode,
} from './negative-cache.js';

interface Rr {
  name: string;
  type: string;
  ttl?: number;
  class?: string;
  data?: unknown;
}
interface Pkt {
  type: 'query' | 'response';
  id?: number;
  flags?: number;
  rcode?: string;
  questions: { name: string; type: string; class?: string }[];
  answers?: Rr[];
  authorities?: Rr[];
}
const packet = createRequire(import.meta.url)('dns-packet') as {
  encode(p: Pkt): Buffer;
  RECURSION_DESIRED: number;
  TRUNCATED_RESPONSE: number;
};
const RCODES: Record<string, number> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };

function soa(zone: string, ttl: number, minimum: number): Rr {
  return {
    name: zone,
    type: 'SOA',
    ttl,
    class: 'IN',
    data: {
      mname: `ns.${zone}`,
      rname: `hostmaster.${zone}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum,
    },
  };
}

function response(
  name: string,
  type: string,
  rcode: string,
  o: { answers?: Rr[]; authorities?: Rr[]; tc?: boolean } = {},
): Buffer {
  return packet.encode({
    type: 'response',
    id: 0,
    flags: (RCODES[rcode] ?? 0) | (o.tc === true ? packet.TRUNCATED_RESPONSE : 0),
    questions: [{ name, type, class: 'IN' }],
    answers: o.answers ?? [],
    authorities: o.authorities ?? [],
  });
}
const query = (name: string, type: string): Buffer =>
  packet.encode({ type: 'query', id: 0, flags: packet.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });

test('NegativeCache: kept for its TTL, keyed by lower-cased name (trailing dot optional) and type', () => {
  let now = 1_000_000;
  const c = new NegativeCache(10, () => now);
  c.set('Nx.Example.TEST.', 'A', 'ENOTFOUND', 30);
  assert.equal(c.get('nx.example.test', 'A'), 'ENOTFOUND');
  assert.equal(c.get('NX.example.test.', 'a'), 'ENOTFOUND');
  assert.equal(c.get('nx.example.test', 'TXT'), undefined, 'another type is another question');
  assert.equal(c.get('x.nx.example.test', 'A'), undefined);
  now += 29_999;
  assert.equal(c.get('nx.example.test', 'A'), 'ENOTFOUND');
  now += 1;
  assert.equal(c.get('nx.example.test', 'A'), undefined, 'expired after 30 s');
  assert.equal(c.size, 0);
});

test('NegativeCache: below 1 s nothing is kept; capped at maxTtlSeconds (default 3 h)', () => {
  let now = 0;
  const c = new NegativeCache(10, () => now);
  c.set('zero.test', 'A', 'ENOTFOUND', 0);
  c.set('half.test', 'A', 'ENOTFOUND', 0.5);
  c.set('nan.test', 'A', 'ENOTFOUND', Number.NaN);
  assert.equal(c.size, 0);
  c.set('long.test', 'TXT', 'ENODATA', 7 * 86_400);
  now = 10_800_000 - 1;
  assert.equal(c.get('long.test', 'TXT'), 'ENODATA');
  now += 1;
  assert.equal(c.get('long.test', 'TXT'), undefined);
  const short = new NegativeCache(10, () => now, 60);
  short.set('x.test', 'A', 'ENOTFOUND', 3600);
  now += 60_000;
  assert.equal(short.get('x.test', 'A'), undefined);
});

test('NegativeCache is bounded: the least recently used entry goes', () => {
  const c = new NegativeCache(2);
  c.set('1.test', 'A', 'ENOTFOUND', 100);
  c.set('2.test', 'A', 'ENOTFOUND', 100);
  assert.ok(c.get('1.test', 'A'));
  c.set('3.test', 'A', 'ENODATA', 100);
  assert.equal(c.size, 2);
  assert.ok(c.get('1.test', 'A'));
  assert.equal(c.get('2.test', 'A'), undefined);
  assert.equal(c.get('3.test', 'A'), 'ENODATA');
});

test('negativeAnswer: NXDOMAIN and NODATA with an SOA give min(SOA TTL, MINIMUM)', () => {
  assert.deepEqual(
    negativeAnswer(response('Nx.Zone.TEST', 'A', 'NXDOMAIN', { authorities: [soa('zone.test', 300, 60)] })),
    {
      name: 'nx.zone.test',
      type: 'A',
      code: 'ENOTFOUND',
      ttl: 60,
    },
  );
  assert.deepEqual(
    negativeAnswer(response('zone.test', 'TXT', 'NOERROR', { authorities: [soa('zone.test', 45, 3600)] })),
    {
      name: 'zone.test',
      type: 'TXT',
      code: 'ENODATA',
      ttl: 45,
    },
  );
  assert.equal(
    negativeAnswer(response('a.test', 'A', 'NXDOMAIN', { authorities: [soa('.', 0, 0)] }))?.ttl,
    0,
    'the root zone covers every name; TTL 0 is reported (the cache refuses it)',
  );
});

test('negativeAnswer: nothing without an SOA, for other rcodes, when truncated, via CNAME or off-zone', () => {
  assert.equal(negativeAnswer(response('nx.test', 'A', 'NXDOMAIN')), null, 'no SOA: no TTL to use');
  assert.equal(
    negativeAnswer(
      response('x.test', 'A', 'NOERROR', { authorities: [{ name: 'test', type: 'NS', ttl: 300, data: 'ns.test' }] }),
    ),
    null,
    'a referral is no NODATA',
  );
  for (const rcode of ['SERVFAIL', 'REFUSED']) {
    assert.equal(
      negativeAnswer(response('x.zone.test', 'A', rcode, { authorities: [soa('zone.test', 300, 300)] })),
      null,
      rcode,
    );
  }
  assert.equal(
    negativeAnswer(response('x.zone.test', 'A', 'NXDOMAIN', { tc: true, authorities: [soa('zone.test', 300, 300)] })),
    null,
    'truncated',
  );
  assert.equal(
    negativeAnswer(
      response('alias.zone.test', 'A', 'NXDOMAIN', {
        answers: [{ name: 'alias.zone.test', type: 'CNAME', ttl: 300, data: 'gone.zone.test' }],
        authorities: [soa('zone.test', 300, 300)],
      }),
    ),
    null,
    'NXDOMAIN at the end of a CNAME chain',
  );
  assert.equal(
    negativeAnswer(response('x.zone.test', 'A', 'NXDOMAIN', { authorities: [soa('other.test', 300, 300)] })),
    null,
    'SOA of another zone',
  );
  assert.equal(
    negativeAnswer(response('x.zone.test', 'A', 'NXDOMAIN', { authorities: [soa('one.zone.test', 300, 300)] })),
    null,
    'SOA of a child zone',
  );
  assert.equal(negativeAnswer(Buffer.from('garbage')), null);
  const good = response('x.zone.test', 'A', 'NXDOMAIN', { authorities: [soa('zone.test', 300, 300)] });
  assert.equal(negativeAnswer(good.subarray(0, good.length - 5)), null, 'cut short');
});

test('negativeAnswer: the question must be the one asked', () => {
  const nx = response('x.zone.test', 'A', 'NXDOMAIN', { authorities: [soa('zone.test', 300, 300)] });
  assert.equal(negativeAnswer(nx, query('X.Zone.Test', 'A'))?.code, 'ENOTFOUND');
  assert.equal(negativeAnswer(nx, query('y.zone.test', 'A')), null);
  assert.equal(negativeAnswer(nx, query('x.zone.test', 'AAAA')), null);
  assert.equal(negativeAnswer(nx, Buffer.from('x')), null);
});

test('recordNegativeAnswers: GET (dns=) and POST requests, 2xx only; the response goes on unchanged', async () => {
  const cache = new NegativeCache(10);
  const body = response('nx.zone.test', 'TXT', 'NXDOMAIN', { authorities: [soa('zone.test', 300, 120)] });
  let status = 200;
  const request = recordNegativeAnswers(
    async (_url: string, _o: { method?: string; body?: Buffer }) => ({ statusCode: status, headers: {}, body }),
    cache,
  );
  const q = query('nx.zone.test', 'TXT');
  const res = await request(`http://127.0.0.1:1/dns-query?dns=${q.toString('base64url')}`, { method: 'GET' });
  assert.equal(res.body, body);
  assert.equal(cache.get('nx.zone.test', 'TXT'), 'ENOTFOUND');

  const cache2 = new NegativeCache(10);
  const post = recordNegativeAnswers(async () => ({ statusCode: 200, body }), cache2);
  await post('http://127.0.0.1:1/dns-query', { method: 'POST', body: q });
  assert.equal(cache2.get('nx.zone.test', 'TXT'), 'ENOTFOUND');

  const cache3 = new NegativeCache(10);
  status = 503;
  const failing = recordNegativeAnswers(async () => ({ statusCode: status, body }), cache3);
  await failing(`http://127.0.0.1:1/dns-query?dns=${q.toString('base64url')}`, { method: 'GET' });
  await failing('http://127.0.0.1:1/dns-query', { method: 'GET' }); // no query at all
  assert.equal(cache3.size, 0);
});

test('withNegativeCache answers a cached negative with makeError, without asking', async () => {
  const cache = new NegativeCache(10);
  const asked: string[] = [];
  const backend: LookupBackend = {
    resolveTxt: async (n) => (asked.push(`TXT ${n}`), [['txt']]),
    resolveMx: async (n) => (asked.push(`MX ${n}`), []),
    resolve4: async (n) => (asked.push(`A ${n}`), ['192.0.2.1']),
    resolve6: async (n) => (asked.push(`AAAA ${n}`), []),
    resolvePtr: async (n) => (asked.push(`PTR ${n}`), []),
  };
  const made: [string, string, NegativeCode][] = [];
  const r = withNegativeCache(backend, cache, (name, type, code) => {
    made.push([name, type, code]);
    return Object.assign(new Error(`query ${code} ${name}`), { code });
  });
  cache.set('nx.test', 'A', 'ENOTFOUND', 60);
  cache.set('nodata.test', 'TXT', 'ENODATA', 60);
  cache.set('1.2.0.192.in-addr.arpa', 'PTR', 'ENOTFOUND', 60);
  await assert.rejects(r.resolve4('NX.test.'), { code: 'ENOTFOUND' });
  await assert.rejects(r.resolveTxt('nodata.test'), { code: 'ENODATA' });
  await assert.rejects(r.resolvePtr('1.2.0.192.in-addr.arpa'), { code: 'ENOTFOUND' });
  assert.deepEqual(made, [
    ['NX.test.', 'A', 'ENOTFOUND'],
    ['nodata.test', 'TXT', 'ENODATA'],
    ['1.2.0.192.in-addr.arpa', 'PTR', 'ENOTFOUND'],
  ]);
  assert.deepEqual(await r.resolveTxt('nx.test'), [['txt']]);
  assert.deepEqual(await r.resolve4('nodata.test'), ['192.0.2.1']);
  await r.resolveMx('nx.test');
  await r.resolve6('nx.test');
  assert.deepEqual(asked, ['TXT nx.test', 'A nodata.test', 'MX nx.test', 'AAAA nx.test']);
});
