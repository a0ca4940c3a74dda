import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryRbls, rblQueryName, refusalOf } from './dnsbl.js';

const err = (code: string): Error => Object.assign(new Error(code), { code });

const RESOLVER_HINT =
  'the DNSBL refuses this resolver: a public resolver or over quota; use a local caching resolver such as unbound';

test('rblQueryName: reversed octets, reversed nibbles for IPv6, mapped IPv4', () => {
  assert.equal(rblQueryName('192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
  assert.equal(rblQueryName('::ffff:192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
  assert.equal(
    rblQueryName('2001:db8::1', 'bl.example'),
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example',
  );
  assert.equal(rblQueryName('nonsense', 'bl.example'), null);
});

test('queryRbls: listings, reasons, refusal codes, foreign answers, failures and timeouts', async () => {
  const a: Record<string, string[] | Error | 'hang'> = {
    '1.2.0.192.listed.example': ['127.0.0.2'],
    '1.2.0.192.noreason.example': ['127.0.0.4'],
    '1.2.0.192.refuses.example': ['127.255.255.254'],
    '1.2.0.192.foreign.example': ['10.0.0.1'],
    '1.2.0.192.broken.example': err('ESERVFAIL'),
    '1.2.0.192.clean.example': err('ENOTFOUND'),
    '1.2.0.192.slow.example': 'hang',
  };
  const txt: Record<string, string[][]> = { '1.2.0.192.listed.example': [['spam ', 'source\r\n']] };
  const resolver = {
    resolve4: (n: string): Promise<string[]> => {
      const v = a[n];
      if (v === 'hang') return new Promise(() => {});
      return v instanceof Error ? Promise.reject(v) : Promise.resolve(v ?? []);
    },
    resolveTxt: (n: string): Promise<string[][]> => (txt[n] ? Promise.resolve(txt[n]) : Promise.reject(err('ENODATA'))),
  };
  const lists = ['listed', 'noreason', 'refuses', 'foreign', 'broken', 'clean', 'slow'].map((z, i) => ({
    zone: `${z}.example`,
    score: i === 1 ? 0.5 : 1,
    reason: z === 'noreason' ? null : 'configured reason',
  }));
  const r = await queryRbls('192.0.2.1', lists, resolver, 200);
  assert.deepEqual(
    r.listed.map((l) => [l.zone, l.score, l.reason, l.codes]),
    [
      ['listed.example', 1, 'spam source', ['127.0.0.2']],
      ['noreason.example', 0.5, 'listed by noreason.example', ['127.0.0.4']],
    ],
  );
  assert.equal(r.score, 1.5);
  assert.deepEqual(r.problems, [
    {
      zone: 'refuses.example',
      kind: 'refused',
      detail: '127.255.255.254',
      reason: 'query through a public or open resolver',
      hint: RESOLVER_HINT,
    },
    { zone: 'foreign.example', kind: 'ignored', detail: '10.0.0.1' },
    { zone: 'broken.example', kind: 'lookup', detail: 'ESERVFAIL' },
    { zone: 'slow.example', kind: 'lookup', detail: 'ETIMEOUT' },
  ]);
});

test('refusalOf: the reason and the hint of each 127.255.255.x error code', () => {
  const cases: [string, string, string][] = [
    ['127.255.255.252', 'typing error in the DNSBL name', 'check the zone of the RBL line'],
    ['127.255.255.254', 'query through a public or open resolver', RESOLVER_HINT],
    ['127.255.255.255', 'excessive number of queries', RESOLVER_HINT],
    ['127.255.255.1', 'an error code of the list (127.255.255.0/24), not a listing', RESOLVER_HINT],
  ];
  for (const [code, reason, hint] of cases) assert.deepEqual(refusalOf(code), { reason, hint }, code);
});

test('queryRbls: a 127.255.255.x answer is never a listing, alone or beside a listing code', async () => {
  const a: Record<string, string[]> = {
    '1.2.0.192.quota.example': ['127.255.255.255'],
    '1.2.0.192.typo.example': ['127.255.255.252'],
    '1.2.0.192.mixed.example': ['127.0.0.2', '127.255.255.254'],
  };
  const resolver = {
    resolve4: (n: string): Promise<string[]> => Promise.resolve(a[n] ?? []),
    resolveTxt: (): Promise<string[][]> => Promise.reject(err('ENODATA')),
  };
  const lists = ['quota', 'typo', 'mixed'].map((z) => ({ zone: `${z}.example`, score: 1, reason: null }));
  const r = await queryRbls('192.0.2.1', lists, resolver);
  assert.equal(r.score, 1);
  assert.deepEqual(
    r.listed.map((l) => [l.zone, l.codes]),
    [['mixed.example', ['127.0.0.2']]],
  );
  assert.deepEqual(r.problems, [
    {
      zone: 'quota.example',
      kind: 'refused',
      detail: '127.255.255.255',
      reason: 'excessive number of queries',
      hint: RESOLVER_HINT,
    },
    {
      zone: 'typo.example',
      kind: 'refused',
      detail: '127.255.255.252',
      reason: 'typing error in the DNSBL name',
      hint: 'check the zone of the RBL line',
    },
  ]);
});
