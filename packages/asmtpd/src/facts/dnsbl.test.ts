import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryRbls, rblQueryName } from './dnsbl.js';

const err = (code: string): Error => Object.assign(new Error(code), { code });

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
    { zone: 'refuses.example', kind: 'refused', detail: '127.255.255.254' },
    { zone: 'foreign.example', kind: 'ignored', detail: '10.0.0.1' },
    { zone: 'broken.example', kind: 'lookup', detail: 'ESERVFAIL' },
    { zone: 'slow.example', kind: 'lookup', detail: 'ETIMEOUT' },
  ]);
});
