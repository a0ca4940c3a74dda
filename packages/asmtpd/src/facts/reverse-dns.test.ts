import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reverseName } from './reverse-dns.js';

const err = (code: string): Error => Object.assign(new Error(code), { code });

function resolver(
  ptr: Record<string, string[] | Error>,
  a: Record<string, string[] | Error>,
  aaaa: Record<string, string[] | Error> = {},
) {
  const answer = (t: Record<string, string[] | Error>, k: string): Promise<string[]> => {
    const v = t[k];
    if (v === undefined) return Promise.reject(err('ENOTFOUND'));
    return v instanceof Error ? Promise.reject(v) : Promise.resolve(v);
  };
  return {
    reverse: (ip: string) => answer(ptr, ip),
    resolve4: (n: string) => answer(a, n),
    resolve6: (n: string) => answer(aaaa, n),
  };
}

test('FCrDNS: confirmed, unconfirmed, none, temporary failures', async () => {
  assert.deepEqual(
    await reverseName(
      '192.0.2.1',
      resolver({ '192.0.2.1': ['Mail.Example.'] }, { 'Mail.Example': ['192.0.2.9', '192.0.2.1'] }),
    ),
    { name: 'mail.example', ptr: 'Mail.Example', tempfail: false },
  );
  assert.deepEqual(
    await reverseName('192.0.2.1', resolver({ '192.0.2.1': ['liar.example'] }, { 'liar.example': ['192.0.2.2'] })),
    { name: null, ptr: 'liar.example', tempfail: false },
  );
  assert.deepEqual(await reverseName('192.0.2.1', resolver({}, {})), { name: null, ptr: null, tempfail: false });
  assert.deepEqual(await reverseName('192.0.2.1', resolver({ '192.0.2.1': err('ETIMEOUT') }, {})), {
    name: null,
    ptr: null,
    tempfail: true,
  });
  assert.deepEqual(
    await reverseName('192.0.2.1', resolver({ '192.0.2.1': ['a.example'] }, { 'a.example': err('ESERVFAIL') })),
    { name: null, ptr: 'a.example', tempfail: true },
  );
  // the second PTR name confirms: no failure even though the first one's lookup failed
  assert.deepEqual(
    await reverseName(
      '192.0.2.1',
      resolver(
        { '192.0.2.1': ['a.example', 'b.example'] },
        { 'a.example': err('ESERVFAIL'), 'b.example': ['192.0.2.1'] },
      ),
    ),
    { name: 'b.example', ptr: 'a.example', tempfail: false },
  );
});

test('FCrDNS: IPv6 compares addresses, not their spelling; mapped IPv4 is IPv4', async () => {
  assert.equal(
    (
      await reverseName(
        '2001:db8::1',
        resolver({ '2001:db8::1': ['v6.example'] }, {}, { 'v6.example': ['2001:0db8:0:0::0001'] }),
      )
    ).name,
    'v6.example',
  );
  assert.equal(
    (await reverseName('::ffff:192.0.2.1', resolver({ '192.0.2.1': ['m.example'] }, { 'm.example': ['192.0.2.1'] })))
      .name,
    'm.example',
  );
});
