/* parse.test.ts — the record parser beyond the suites. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSpfRecord, parseRecord, parseTerms } from './parse.js';
import { SpfSyntaxError } from './macro.js';

test('record selection: version tag', () => {
  const table: Array<[string, boolean]> = [
    ['v=spf1', true],
    ['v=spf1 -all', true],
    ['V=SpF1 ~all', true],
    ['v=spf10', false],
    ['v=spf1-all', false],
    [' v=spf1 -all', false],
    ['spf2.0/pra -all', false],
    ['v=spf1\t-all', false],
  ];
  for (const [text, want] of table) assert.equal(isSpfRecord(text), want, text);
});

test('mechanisms: kinds, qualifiers, arguments', () => {
  const r = parseRecord(
    'v=spf1 +a -A:Example.COM/24//64 ~mx//0 ?ptr:example.org ip4:192.0.2.0/24 IP6:2001:DB8::/32 exists:%{i}.bl.example include:_spf.example.net all',
  );
  assert.deepEqual(
    r.mechanisms.map((m) => [m.kind, m.qualifier]),
    [
      ['a', '+'],
      ['a', '-'],
      ['mx', '~'],
      ['ptr', '?'],
      ['ip4', '+'],
      ['ip6', '+'],
      ['exists', '+'],
      ['include', '+'],
      ['all', '+'],
    ],
  );
  const a = r.mechanisms[1];
  assert.ok(a?.kind === 'a');
  assert.equal(a.domain?.raw, 'Example.COM');
  assert.equal(a.cidr4, 24);
  assert.equal(a.cidr6, 64);
  const mx = r.mechanisms[2];
  assert.ok(mx?.kind === 'mx' && mx.domain === null && mx.cidr4 === 32 && mx.cidr6 === 0);
  const ip4 = r.mechanisms[4];
  assert.ok(ip4?.kind === 'ip4' && ip4.network === 0xc0000200 && ip4.cidr === 24);
  assert.equal(r.mechanisms[5]?.text, 'IP6:2001:DB8::/32');
});

test('modifiers: redirect, exp, unknown ones ignored, position free', () => {
  const r = parseRecord('v=spf1 exp=explain.%{d} a redirect=_spf.example.com foo.bar-baz_1=anything:%{d}/x');
  assert.equal(r.redirect?.raw, '_spf.example.com');
  assert.equal(r.exp?.raw, 'explain.%{d}');
  assert.equal(r.mechanisms.length, 1);
  assert.equal(parseRecord('v=spf1').mechanisms.length, 0);
  assert.equal(parseRecord('v=spf1   a    -all  ').mechanisms.length, 2);
});

test('syntax errors', () => {
  const bad = [
    'v=spf1 ip4:01.2.3.4',
    'v=spf1 ip4:1.2.3.4/',
    'v=spf1 ip4:1.2.3.4/33',
    'v=spf1 ip4:256.1.1.1',
    'v=spf1 ip6:2001:db8::/129',
    'v=spf1 ip6:2001:db8:::1',
    'v=spf1 ip6:1:2:3:4:5:6:7:8:9',
    'v=spf1 ip6:fe80::1%eth0',
    'v=spf1 a/',
    'v=spf1 a:example.com/',
    'v=spf1 mx//',
    'v=spf1 a/24/64',
    'v=spf1 a//01',
    'v=spf1 exists:%{d0}.example.com',
    'v=spf1 include:%{d}.',
    'v=spf1 exp=%{c}.example.com',
    'v=spf1 redirect=a.example.com redirect=b.example.com',
    'v=spf1 +foo=bar',
    'v=spf1 -redirect=a.example.com',
    'v=spf1 1foo=bar',
    'v=spf1 foo=%',
    'v=spf1 include',
    'v=spf1 exists',
    'v=spf1 all:x',
    'v=spf1 allx',
    'v=spf1 ptr/24',
    'v=spf1 a\u00a0-all',
    'v=spf1 -all\r',
    'v=spf1 ~',
    'v=spf1 mx:example.com:25',
  ];
  for (const text of bad) assert.throws(() => parseRecord(text), SpfSyntaxError, JSON.stringify(text));
});

test('terms without a version (SPFLocal, the spf helper) and the parse cache', () => {
  assert.equal(parseTerms('ip4:192.0.2.0/24 a:relay.example.net -all').mechanisms.length, 3);
  assert.throws(() => parseTerms('ip4:192.0.2.0/33'), SpfSyntaxError);
  const text = 'v=spf1 a mx -all';
  assert.equal(parseRecord(text), parseRecord(text), 'same parsed object');
});
