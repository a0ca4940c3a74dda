/* macro.test.ts — the macro expander beyond the suites: RFC 7208 §7.4's examples, transformers, escaping, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandDomain,
  expandMacroString,
  parseDomainSpec,
  parseMacroString,
  SpfSyntaxError,
  urlEscape,
  validDomainName,
  type MacroValues,
} from './macro.js';
import { parseClientIp } from './ip.js';

function values(ipText: string, sender = 'strong-bad@email.example.com'): MacroValues {
  const ip = parseClientIp(ipText);
  assert.ok(ip);
  const at = sender.lastIndexOf('@');
  return {
    sender,
    localPart: sender.slice(0, at),
    senderDomain: sender.slice(at + 1),
    domain: sender.slice(at + 1),
    ipDotted: ip.macroI,
    ipReadable: ip.macroC,
    ipVersion: ip.family === 4 ? 'in-addr' : 'ip6',
    helo: 'mx.example.org',
    receiver: 'receiver.example',
    nowSeconds: 1700000000,
  };
}

const expand = (s: string, v: MacroValues, where: 'domain' | 'explanation' = 'explanation'): string =>
  expandMacroString(parseMacroString(s, where), v);

test('RFC 7208 §7.4 examples (IPv4 192.0.2.3)', () => {
  const v = values('192.0.2.3');
  const table: Array<[string, string]> = [
    ['%{s}', 'strong-bad@email.example.com'],
    ['%{o}', 'email.example.com'],
    ['%{d}', 'email.example.com'],
    ['%{d4}', 'email.example.com'],
    ['%{d3}', 'email.example.com'],
    ['%{d2}', 'example.com'],
    ['%{d1}', 'com'],
    ['%{dr}', 'com.example.email'],
    ['%{d2r}', 'example.email'],
    ['%{l}', 'strong-bad'],
    ['%{l-}', 'strong.bad'],
    ['%{lr}', 'strong-bad'],
    ['%{lr-}', 'bad.strong'],
    ['%{l1r-}', 'strong'],
    ['%{ir}.%{v}._spf.%{d2}', '3.2.0.192.in-addr._spf.example.com'],
    ['%{lr-}.lp._spf.%{d2}', 'bad.strong.lp._spf.example.com'],
    ['%{lr-}.lp.%{ir}.%{v}._spf.%{d2}', 'bad.strong.lp.3.2.0.192.in-addr._spf.example.com'],
    ['%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}', '3.2.0.192.in-addr.strong.lp._spf.example.com'],
    ['%{d2}.trusted-domains.example.net', 'example.com.trusted-domains.example.net'],
  ];
  for (const [m, want] of table) assert.equal(expand(m, v, 'domain'), want, m);
});

test('RFC 7208 §7.4 IPv6 example (nibbles; DNS names are case-insensitive)', () => {
  const v = values('2001:db8::cb01');
  assert.equal(
    expand('%{ir}.%{v}._spf.%{d2}', v, 'domain').toLowerCase(),
    '1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com',
  );
  assert.equal(expand('%{c}', v), '2001:db8::cb01');
  assert.equal(expand('%{v}', values('::ffff:192.0.2.3')), 'in-addr', 'IPv4-mapped is IPv4');
  assert.equal(expand('%{i}', values('::ffff:192.0.2.3')), '192.0.2.3');
});

test('explanation-only letters, escapes and URL encoding', () => {
  const v = values('192.0.2.3', '~jack&jill=up-a_b3.c@example.com');
  assert.equal(expand('%{c} %{r} %{t}', v), '192.0.2.3 receiver.example 1700000000');
  assert.equal(expand('%{L}', v), '~jack%26jill%3Dup-a_b3.c');
  assert.equal(expand('100%% %_x%-y', v), '100%  x%20y');
  assert.equal(expand('%{S}', values('192.0.2.3', 'a b@example.com')), 'a%20b%40example.com');
  assert.equal(urlEscape("!*'() é"), '%21%2A%27%28%29%20%C3%A9');
  for (const letter of ['c', 'r', 't', 'C']) {
    assert.throws(() => parseMacroString(`%{${letter}}.example.com`, 'domain'), SpfSyntaxError, letter);
  }
});

test('transformers: several delimiters, big and small digit counts, reversal', () => {
  const v = values('192.0.2.3', 'foo-bar+zip+quux@a.b.c.example.com');
  assert.equal(expand('%{l2r+-}', v), 'bar.foo');
  assert.equal(expand('%{l+}', v), 'foo-bar.zip.quux');
  assert.equal(expand('%{d200}', v), 'a.b.c.example.com');
  assert.equal(expand('%{d1r}', v), 'a');
  assert.equal(expand('%{dR}', v), 'com.example.c.b.a', 'R is the reverse transformer too');
  assert.equal(expand('%{o=/,_}', values('192.0.2.3', 'x@a=b/c,d_e.f')), 'a.b.c.d.e.f');
});

test('syntax errors', () => {
  for (const bad of ['%', '%a', '%{', '%{d', '%{x}', '%{d0}', '%{dd}', '%{d2x}', '%{}', 'a b', 'a\tb', 'é']) {
    assert.throws(() => parseMacroString(bad, 'domain'), SpfSyntaxError, JSON.stringify(bad));
  }
  assert.doesNotThrow(() => parseMacroString('a b %{c}', 'explanation'));
});

test('domain-spec must end in a macro or "." toplabel', () => {
  for (const ok of [
    'example.com',
    'example.com.',
    '%{d}',
    'x.%{d}',
    '%{d}.xn--zckzah',
    'a%%',
    'a%_',
    'a%-',
    'foo:bar/baz.example.com',
  ]) {
    assert.doesNotThrow(() => parseDomainSpec(ok), ok);
  }
  for (const bad of [
    '',
    'museum',
    'museum.',
    'abc.123',
    'example.-com',
    'example.com-',
    'example.com/24',
    '%{d}.',
    'a%%-',
    'foo.c%%m',
  ]) {
    assert.throws(() => parseDomainSpec(bad), SpfSyntaxError, JSON.stringify(bad));
  }
});

test('expanded names: trailing dot, 253-octet truncation from the left, unqueryable names', () => {
  const v = values('192.0.2.3');
  assert.equal(expandDomain(parseDomainSpec('%{d}.example.'), v), 'email.example.com.example');
  const long = `${'a'.repeat(60)}.`.repeat(5) + 'example.com';
  const out = expandDomain(parseDomainSpec(`${long}`), v);
  assert.ok(out !== undefined && out.length <= 253 && long.endsWith(out) && out.startsWith('a'));
  assert.equal(expandDomain(parseDomainSpec('a..example.com'), v), undefined);
  assert.equal(expandDomain(parseDomainSpec(`${'a'.repeat(64)}.example.com`), v), undefined);
  assert.equal(validDomainName('example.com'), true);
  assert.equal(validDomainName('.example.com'), false);
});
