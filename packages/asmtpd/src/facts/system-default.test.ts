import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemDefault } from './system-default.js';
import type { FactValues } from './client-facts.js';
import { formatReply } from '../reply/reply.js';

const none: FactValues = {
  reverse: { name: 'ok.example', ptr: 'ok.example', tempfail: false },
  rbl: { score: 0, listed: [], problems: [] },
  spf: null,
  spfHelo: null,
  bounce: null,
  syn: null,
  route: null,
};
const spf = (result: string, explanation?: string) =>
  ({
    result,
    domain: 's.example',
    sender: 'a@s.example',
    dnsTerms: 0,
    voidLookups: 0,
    queries: 0,
    ...(explanation ? { explanation } : {}),
  }) as NonNullable<FactValues['spf']>;
const cfg = { rblThreshold: 1, spfRejectFail: true, dynamicNameReject: false, allowDnsFailures: false };
const text = (f: Partial<FactValues>, c = cfg): string | null => {
  const r = systemDefault({ ...none, ...f }, c, 'a@s.example', '192.0.2.1');
  return r ? formatReply(r) : null;
};

test('MAIL_ERROR: each cause, in order of precedence', () => {
  const listed = {
    score: 2,
    listed: [
      { zone: 'z1.example', score: 1, reason: 'r1', codes: [] },
      { zone: 'z2.example', score: 1, reason: 'r2', codes: [] },
    ],
    problems: [],
  };
  assert.equal(text({}), null);
  assert.equal(text({ rbl: listed, spf: spf('fail', 'x') }), '550 5.7.1 listed by z1.example, z2.example: r1; r2');
  assert.equal(text({ rbl: { ...listed, score: 0.5, listed: listed.listed.slice(0, 1) } }), null, 'below RBLThreshold');
  assert.equal(text({ spf: spf('fail', 'not here') }), '550 5.7.23 SPF: not here');
  assert.equal(text({ spf: spf('fail', 'not here') }, { ...cfg, spfRejectFail: false }), null);
  assert.equal(
    text({ bounce: { kind: 'refused', reply: '550 5.1.1 unknown user' } }),
    '550 5.1.8 bounces to <a@s.example> are refused: 550 5.1.1 unknown user',
  );
  assert.equal(
    text({ bounce: { kind: 'tempfail', reply: '451 4.4.2 bounce probe timed out' } }),
    null,
    'a probe that could not finish is never a rejection',
  );
  assert.equal(
    text({ reverse: { name: null, ptr: null, tempfail: true } }),
    '451 4.4.3 temporary DNS failure: reverse lookup of 192.0.2.1',
  );
  assert.equal(text({ spf: spf('temperror') }), '451 4.4.3 temporary DNS failure: SPF check of s.example');
  assert.equal(
    text(
      { spf: spf('temperror'), reverse: { name: null, ptr: null, tempfail: true } },
      { ...cfg, allowDnsFailures: true },
    ),
    null,
  );
  assert.equal(
    text({ rbl: { score: 0, listed: [], problems: [{ zone: 'z', kind: 'lookup', detail: 'ETIMEOUT' }] } }),
    null,
    'a dead DNSBL defers nothing',
  );
});

test('MAIL_ERROR: a dynamic-looking name with DynamicNameReject, after the rejections', () => {
  const dyn = {
    reverse: { name: 'dsl-192-0-2-1.example.net', ptr: 'dsl-192-0-2-1.example.net', tempfail: false, dynamic: true },
  };
  const on = { ...cfg, dynamicNameReject: true };
  assert.equal(text(dyn), null, 'DynamicNameReject no: a fact only');
  assert.equal(
    text(dyn, on),
    "451 4.7.1 client host name dsl-192-0-2-1.example.net looks dynamic: send through your provider's mail server",
  );
  assert.equal(text({ ...dyn, spf: spf('fail', 'not here') }, on), '550 5.7.23 SPF: not here', 'a rejection first');
  assert.equal(text({}, on), null, 'a static name');
});
