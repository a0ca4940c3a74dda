import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatDuration,
  formatSize,
  parseAbsolutePath,
  parseBoolean,
  parseChoice,
  parseAccountName,
  parseDomainName,
  parseDurationMs,
  parseInteger,
  parsePort,
  parseRelayTarget,
  parseDovecotAuthTarget,
  parseSeparator,
  parseSizeBytes,
  type Parsed,
} from './values.js';

/** Table-driven: each good input with its value, each bad input fails. */
function checkParser<T>(name: string, parse: (text: string) => Parsed<T>, good: [string, T][], bad: string[]): void {
  for (const [input, value] of good) {
    test(`${name}: ${JSON.stringify(input)} → ${JSON.stringify(value)}`, () => {
      const r = parse(input);
      assert.equal(r.kind, 'ok', r.kind === 'error' ? r.message : '');
      if (r.kind === 'ok') assert.deepEqual(r.value, value);
    });
  }
  for (const input of bad) {
    test(`${name}: ${JSON.stringify(input)} is refused`, () => {
      const r = parse(input);
      assert.equal(r.kind, 'error');
      if (r.kind === 'error') assert.ok(r.message.length > 0);
    });
  }
}

checkParser(
  'boolean',
  parseBoolean,
  [
    ['yes', true],
    ['YES', true],
    ['on', true],
    ['True', true],
    ['1', true],
    ['no', false],
    ['Off', false],
    ['false', false],
    ['0', false],
  ],
  ['', 'y', 'n', '2', 'enable', 'yes please'],
);

checkParser(
  'duration',
  (t) => parseDurationMs(t),
  [
    ['0', 0],
    ['30', 30_000],
    ['30s', 30_000],
    ['5m', 300_000],
    ['5M', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['0.25m', 15_000],
  ],
  ['', 's', '-1', '5 m', '5min', '1w', '1e3', '.5s', '5m30s'],
);
checkParser(
  'duration with range',
  (t) => parseDurationMs(t, { minMs: 1000, maxMs: 300_000 }),
  [
    ['1s', 1000],
    ['5m', 300_000],
  ],
  ['0', '0.5s', '6m'],
);

checkParser(
  'size',
  (t) => parseSizeBytes(t),
  [
    ['0', 0],
    ['1000', 1000],
    ['1k', 1024],
    ['1K', 1024],
    ['50M', 52_428_800],
    ['50m', 52_428_800],
    ['2G', 2 * 1024 ** 3],
    ['1.5k', 1536],
  ],
  ['', 'M', '-1', '10 M', '10MB', '10T', '1e6'],
);
checkParser(
  'size with range',
  (t) => parseSizeBytes(t, { minBytes: 1024, maxBytes: 1024 ** 2 }),
  [
    ['1k', 1024],
    ['1M', 1024 ** 2],
  ],
  ['100', '2M'],
);

checkParser(
  'integer',
  (t) => parseInteger(t, { min: 1, max: 100 }),
  [
    ['1', 1],
    ['100', 100],
    ['007', 7],
  ],
  ['0', '101', '', '1.5', 'ten', '+5', '-1', '99999999999999999999'],
);

checkParser(
  'port',
  parsePort,
  [
    ['1', 1],
    ['25', 25],
    ['65535', 65535],
  ],
  ['0', '65536', 'smtp', '', '25x'],
);

checkParser(
  'choice',
  (t) => parseChoice(t, ['reject', 'normalize'] as const, { normalise: 'normalize' }),
  [
    ['reject', 'reject'],
    ['REJECT', 'reject'],
    ['Normalize', 'normalize'],
    ['normalise', 'normalize'],
  ],
  ['', 'accept', 'rejected'],
);

checkParser(
  'domain',
  parseDomainName,
  [
    ['example.org', 'example.org'],
    ['Mail.Example.ORG', 'mail.example.org'],
    ['example.org.', 'example.org'],
    ['localhost', 'localhost'],
    ['a-b.c1.example', 'a-b.c1.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    [`${'a'.repeat(63)}.org`, `${'a'.repeat(63)}.org`],
  ],
  [
    '',
    '.',
    'example..org',
    '.example.org',
    '-a.org',
    'a-.org',
    'a_b.org',
    'a b.org',
    `${'a'.repeat(64)}.org`,
    '192.0.2.1',
    '::1',
    'host.123',
    `${'abcdefghi.'.repeat(26)}org`,
    'ex*mple.org',
  ],
);

checkParser(
  'absolute path',
  parseAbsolutePath,
  [
    ['/etc/avenger', '/etc/avenger'],
    ['/etc/avenger/', '/etc/avenger'],
    ['/var//spool/./x/../avenger', '/var/spool/avenger'],
    ['/', '/'],
  ],
  ['', 'etc/avenger', './x', '~/x'],
);

checkParser(
  'relay target',
  parseRelayTarget,
  [
    ['127.0.0.1:10025', { kind: 'smtp', host: '127.0.0.1', port: 10025 }],
    ['mx.example.org:25', { kind: 'smtp', host: 'mx.example.org', port: 25 }],
    ['MX.Example.org', { kind: 'smtp', host: 'mx.example.org', port: 25 }],
    ['[::1]:2525', { kind: 'smtp', host: '::1', port: 2525 }],
    ['[2001:db8::5]', { kind: 'smtp', host: '2001:db8::5', port: 25 }],
    ['lmtp:127.0.0.1:24', { kind: 'lmtp', host: '127.0.0.1', port: 24 }],
    ['LMTP:mail.example.org:2003', { kind: 'lmtp', host: 'mail.example.org', port: 2003 }],
    ['lmtp:[::1]:24', { kind: 'lmtp', host: '::1', port: 24 }],
    ['lmtp:dovecot.example', { kind: 'lmtp', host: 'dovecot.example', port: 24 }],
    ['unix:/run/dovecot/lmtp', { kind: 'lmtp-unix', path: '/run/dovecot/lmtp' }],
  ],
  [
    '',
    ':25',
    'host:',
    'host:0',
    'host:70000',
    'host:smtp',
    '::1',
    '::1:25',
    '[::1',
    '[::1]25',
    '[mx.example.org]:25',
    'unix:relative/path',
    'unix:',
    'lmtp:',
    'bad_host:25',
    'a:b:c',
  ],
);

checkParser(
  'separator',
  parseSeparator,
  [
    ['+', '+'],
    ['-', '-'],
    ['=', '='],
    ['_', '_'],
    ['^', '^'],
    ['~', '~'],
  ],
  [
    '',
    '++',
    '+-',
    '@',
    '"',
    '/',
    '\\',
    '.',
    '%',
    '!',
    '#',
    '$',
    '*',
    '?',
    '|',
    '{',
    ' ',
    '\t',
    'a',
    'Z',
    '0',
    '\u00e9',
    '\u2010',
  ],
);

checkParser(
  'account name',
  parseAccountName,
  [
    ['avenger', 'avenger'],
    ['Avenger', 'avenger'],
    ['_spamd', '_spamd'],
    ['mail-filter', 'mail-filter'],
    ['a.b_c-1', 'a.b_c-1'],
    ['x'.repeat(32), 'x'.repeat(32)],
  ],
  ['', '1avenger', '-x', '.x', 'a b', 'a/b', 'a:b', 'a@b', 'a+b', 'x'.repeat(33), 'r\u00e9my'],
);

test('formatDuration and formatSize give the shortest exact form', () => {
  assert.deepEqual([0, 500, 1000, 90_000, 300_000, 3_600_000, 86_400_000].map(formatDuration), [
    '0',
    '0.5s',
    '1s',
    '90s',
    '5m',
    '1h',
    '1d',
  ]);
  assert.deepEqual([0, 1000, 1024, 1536, 52_428_800, 2 * 1024 ** 3].map(formatSize), [
    '0',
    '1000',
    '1k',
    '1536',
    '50M',
    '2G',
  ]);
});

test('parseDovecotAuthTarget: unix:/path or inet:host:port, nothing else', () => {
  assert.deepEqual(parseDovecotAuthTarget('unix:/run/dovecot/auth-client'), {
    kind: 'ok',
    value: { kind: 'unix', path: '/run/dovecot/auth-client' },
  });
  assert.deepEqual(parseDovecotAuthTarget('inet:127.0.0.1:12345'), {
    kind: 'ok',
    value: { kind: 'inet', host: '127.0.0.1', port: 12345 },
  });
  assert.deepEqual(parseDovecotAuthTarget('INET:[::1]:12345'), {
    kind: 'ok',
    value: { kind: 'inet', host: '::1', port: 12345 },
  });
  for (const bad of ['unix:relative', 'inet:127.0.0.1', 'tcp:127.0.0.1:1', '/run/auth', 'inet:127.0.0.1:0'])
    assert.equal(parseDovecotAuthTarget(bad).kind, 'error', bad);
});
