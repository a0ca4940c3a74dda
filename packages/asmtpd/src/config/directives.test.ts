import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SECTIONS } from './directive-kinds.js';
import { DIRECTIVES, findDirective, NOT_YET_SUPPORTED } from './directives.js';
import { parseConfigText } from './load.js';

const CONFIG_FIELDS = [
  'tlsCerts',
  'tlsKeys',
  'tlsMinVersion',
  'authFile',
  'dovecotAuth',
  'insecureAuth',
  'authMaxFailures',
  'smtpPort',
  'bindAddrs',
  'hostname',
  'etcDir',
  'dbDir',
  'maxClients',
  'maxClientsPerIp',
  'maxMsgSizeBytes',
  'maxRcpts',
  'maxErrors',
  'smtpTimeoutMs',
  'dataTimeoutMs',
  'greetingDelayMs',
  'bareLineEndings',
  'proxyProtocol',
  'separator',
  'localDomains',
  'domainFile',
  'aliasFile',
  'passwdFile',
  'avengerUser',
  'avengerTimeoutMs',
  'relayNets',
  'relayHost',
  'sendmail',
  'holdQueue',
  'holdOnFailure',
  'relayTimeoutMs',
  'relayConnections',
  'logLevel',
  'metricsListen',
  'dnsResolver',
  'dnsServers',
  'dnsProtocol',
  'dnsTimeoutMs',
  'allowDnsFailures',
  'spfLocal',
  'spfHostsFile',
  'spfRejectFail',
  'dynamicNameReject',
  'rbls',
  'rblThreshold',
  'smtpCallback',
  'smtpCallbackTimeoutMs',
  'smtpCallbackCacheTtlMs',
  'synFp',
  'synFpDb',
  'netPath',
  'netPathMaxHops',
  'daemonUser',
  'netFactsUser',
  'avengerProcessLimit',
  'avengerCpuLimitMs',
  'avengerMemoryLimitBytes',
  'avengerFileSizeLimitBytes',
  'avengerOpenFilesLimit',
  'relayDomains',
  'mailertable',
  'rcptVerifySubdomains',
  'rcptVerifyValidTtlMs',
  'rcptVerifyInvalidTtlMs',
  'rcptVerifyBackoffMs',
  'rcptVerifyTempfail',
  'rcptVerifySkip',
  'rcptVerifyTimeoutMs',
  'rcptVerifyConnections',
  'blockUnknownRcpts',
  'blockNetmask',
  'blockTimeMs',
  'blockTimeMaxMs',
  'blockAtBanner',
  'whiteList',
  'whiteListFile',
  'workers',
];

test('directive table: every Config field is filled by exactly one directive', () => {
  assert.deepEqual(DIRECTIVES.map((d) => d.field).sort(), [...CONFIG_FIELDS].sort());
  const fromEmpty = parseConfigText('', 'x.conf', { systemHostname: 'mx.example.org' });
  assert.equal(fromEmpty.kind, 'ok');
  if (fromEmpty.kind === 'ok')
    assert.deepEqual(Object.keys(fromEmpty.config).sort(), ['file', ...CONFIG_FIELDS].sort());
});

test('directive table: names are unique (case-insensitive) and found in any case', () => {
  const lower = DIRECTIVES.map((d) => d.name.toLowerCase());
  assert.equal(new Set(lower).size, lower.length);
  for (const d of DIRECTIVES) {
    assert.equal(findDirective(d.name.toUpperCase()), d);
    assert.equal(findDirective(d.name.toLowerCase()), d);
  }
  for (const name of NOT_YET_SUPPORTED)
    assert.equal(findDirective(name), undefined, `${name} is in the table: remove it from NOT_YET_SUPPORTED`);
});

test('directive table: rows are grouped by section, in section order, and documented', () => {
  const order = DIRECTIVES.map((d) => SECTIONS.indexOf(d.section));
  assert.deepEqual(
    order,
    [...order].sort((a, b) => a - b),
  );
  for (const d of DIRECTIVES) {
    assert.ok(d.doc.length > 0 && !d.doc.endsWith('.'), `${d.name}: one line of doc, no final period`);
    assert.ok(d.defaultText.length > 0 && d.sample.length > 0 && d.valueSyntax.length > 0, d.name);
    assert.ok(
      /^[\x20-\x7e]*$/.test(d.name + d.valueSyntax + d.sample),
      `${d.name}: ASCII in what the sample conf shows`,
    );
  }
});

test('directive table: every sample value is a valid value of its directive', () => {
  for (const d of DIRECTIVES) {
    const words = d.sample.split(' ');
    const draft = {};
    const outcome = d.applyLine(draft, d.arity === 'one' ? [d.sample] : words);
    assert.deepEqual(outcome.errors, [], d.name);
  }
});

test('directive table: a literal default text parses to the computed default', () => {
  const defaults = parseConfigText('', 'x.conf', { systemHostname: 'mx.example.org' });
  assert.equal(defaults.kind, 'ok');
  if (defaults.kind !== 'ok') return;
  for (const d of DIRECTIVES.filter((row) => row.sample === row.defaultText)) {
    const draft = {};
    d.applyLine(draft, d.arity === 'one' ? [d.sample] : d.sample.split(' '));
    assert.deepEqual((draft as Record<string, unknown>)[d.field], defaults.config[d.field], d.name);
  }
});

test('RelayDomain: a domain and its backends (port 25 by default, IPv6 in brackets, fallbacks after commas); may repeat', () => {
  const r = parseConfigText(
    [
      'RelayDomain A.Example. 192.0.2.25,[2001:db8::25]:2525,mx2.example.net:26',
      'RelayDomain b.example 127.0.0.1:10026',
      'RcptVerifySubdomains yes',
      'RcptVerifyValidTTL 2h',
      'RcptVerifyInvalidTTL 0',
      'RcptVerifyBackoff 30s',
      'RcptVerifyTempfail no',
      'RcptVerifySkip 192.0.2.0/24',
      'RcptVerifyTimeout 5s',
      'RcptVerifyConnections 2',
    ].join('\n'),
    'x.conf',
    { systemHostname: 'mx.example.org' },
  );
  assert.equal(r.kind, 'ok');
  if (r.kind !== 'ok') return;
  const c = r.config;
  assert.deepEqual(c.relayDomains, [
    {
      domain: 'a.example',
      backends: [
        { host: '192.0.2.25', port: 25 },
        { host: '2001:db8::25', port: 2525 },
        { host: 'mx2.example.net', port: 26 },
      ],
    },
    { domain: 'b.example', backends: [{ host: '127.0.0.1', port: 10026 }] },
  ]);
  assert.deepEqual(
    [c.rcptVerifySubdomains, c.rcptVerifyValidTtlMs, c.rcptVerifyInvalidTtlMs, c.rcptVerifyBackoffMs],
    [true, 7_200_000, 0, 30_000],
  );
  assert.deepEqual([c.rcptVerifyTempfail, c.rcptVerifyTimeoutMs, c.rcptVerifyConnections], [false, 5000, 2]);
  assert.equal(c.rcptVerifySkip[0]?.text, '192.0.2.0/24');
  const defaults = parseConfigText('', 'x.conf', { systemHostname: 'mx.example.org' });
  assert.ok(defaults.kind === 'ok');
  if (defaults.kind === 'ok')
    assert.deepEqual(
      [defaults.config.relayDomains, defaults.config.rcptVerifyValidTtlMs, defaults.config.rcptVerifyInvalidTtlMs],
      [[], 86_400_000, 3_000_000],
    );
  for (const bad of ['RelayDomain a.example', 'RelayDomain a.example 2001:db8::1', 'RelayDomain a.example h1,,h2']) {
    const e = parseConfigText(bad, 'x.conf', { systemHostname: 'mx.example.org' });
    assert.equal(e.kind, 'error', bad);
  }
});
