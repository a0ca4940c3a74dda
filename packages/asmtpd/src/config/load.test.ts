import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIssue, loadConfig, parseConfigText, type ConfigResult } from './load.js';
import type { Config } from './types.js';

const HOST = { systemHostname: 'mx.example.org' };

function okConfig(result: ConfigResult): Config {
  if (result.kind === 'error') assert.fail(result.errors.map(formatIssue).join('\n'));
  return result.config;
}

function errorLines(result: ConfigResult): string[] {
  assert.equal(result.kind, 'error', 'expected errors');
  return result.kind === 'error' ? result.errors.map(formatIssue) : [];
}

function warningLines(result: ConfigResult): string[] {
  return result.kind === 'ok' ? result.warnings.map(formatIssue) : [];
}

test('an empty file gives every default', () => {
  const r = parseConfigText('', '/etc/avenger/asmtpd.conf', HOST);
  assert.deepEqual(r, {
    kind: 'ok',
    warnings: [],
    config: {
      file: '/etc/avenger/asmtpd.conf',
      tlsCerts: [],
      tlsKeys: [],
      tlsMinVersion: 'TLSv1.2',
      authFile: null,
      dovecotAuth: null,
      insecureAuth: false,
      authMaxFailures: 5,
      smtpPort: 25,
      bindAddrs: [],
      hostname: 'mx.example.org',
      etcDir: '/etc/avenger',
      dbDir: '/var/spool/avenger',
      maxClients: 500,
      maxClientsPerIp: 10,
      workers: availableParallelism(),
      maxMsgSizeBytes: 50 * 1024 * 1024,
      maxRcpts: 100,
      maxErrors: 10,
      smtpTimeoutMs: 300_000,
      dataTimeoutMs: 600_000,
      greetingDelayMs: 0,
      bareLineEndings: 'reject',
      proxyProtocol: [],
      separator: null,
      localDomains: ['mx.example.org'],
      domainFile: null,
      aliasFile: null,
      passwdFile: null,
      avengerUser: 'avenger',
      avengerTimeoutMs: 60_000,
      relayNets: [
        { family: 4, address: '127.0.0.0', prefix: 8, text: '127.0.0.0/8' },
        { family: 6, address: '::1', prefix: 128, text: '::1' },
      ],
      daemonUser: 'asmtpd',
      netFactsUser: 'asmtpd-net',
      avengerProcessLimit: 512,
      avengerCpuLimitMs: 60_000,
      avengerMemoryLimitBytes: 1024 ** 3,
      avengerFileSizeLimitBytes: 512 * 1024 ** 2,
      avengerOpenFilesLimit: 1024,
      relayHost: null,
      sendmail: null,
      holdQueue: '/var/spool/avenger/queue',
      holdOnFailure: false,
      relayTimeoutMs: 300_000,
      relayConnections: 20,
      relayDomains: [],
      mailertable: null,
      rcptVerifySubdomains: false,
      rcptVerifyValidTtlMs: 86_400_000,
      rcptVerifyInvalidTtlMs: 3_000_000,
      rcptVerifyBackoffMs: 60_000,
      rcptVerifyTempfail: true,
      rcptVerifySkip: [],
      rcptVerifyTimeoutMs: 10_000,
      rcptVerifyConnections: 4,
      blockUnknownRcpts: { count: 10, windowMs: 600_000 },
      blockNetmask: { v4: 32, v6: 64 },
      blockTimeMs: 4 * 3_600_000,
      blockTimeMaxMs: 7 * 86_400_000,
      blockAtBanner: 'tempfail',
      whiteList: [],
      whiteListFile: null,
      dnsResolver: 'system',
      dnsServers: [],
      dnsProtocol: 'https',
      dnsTimeoutMs: 5000,
      allowDnsFailures: false,
      spfLocal: null,
      spfHostsFile: null,
      spfRejectFail: false,
      dynamicNameReject: false,
      rbls: [],
      rblThreshold: 1,
      smtpCallback: true,
      smtpCallbackTimeoutMs: 30_000,
      smtpCallbackCacheTtlMs: 86_400_000,
      synFp: null,
      synFpDb: [],
      netPath: false,
      netPathMaxHops: 30,
      logLevel: 'info',
      metricsListen: null,
    } satisfies Config,
  });
});

test('every directive set, names in any case', () => {
  const text = [
    'smtpport 2525',
    'BINDADDR 127.0.0.1 ::1',
    'bindaddr 192.0.2.1',
    'hostname Mail.Example.NET.',
    'etcdir /opt/av/etc',
    'DbDir /opt/av/db/',
    'maxclients 50',
    'maxclientsperip 2',
    'maxmsgsize 10m',
    'maxrcpts 20',
    'maxerrors 3',
    'smtptimeout 60',
    'datatimeout 2m',
    'greetingdelay 1.5s',
    'barelineendings NORMALIZE',
    'localdomain a.example b.example',
    'LocalDomain c.example',
    'separator -',
    'AVENGERUSER Spamd',
    'avengertimeout 2m',
    'relaynet 10.0.0.0/8',
    'relayhost lmtp:[::1]:24',
    'holdonfailure on',
    'relaytimeout 30s',
    'loglevel Debug',
    'dnsresolver TANGERINE',
    'dnsserver 127.0.0.1:5353 ::1',
    'DNSServer [::1]:53',
    'dnsprotocol http',
    'dnstimeout 2s',
    'allowdnsfailures yes',
    'spflocal include:fwd.example ip4:192.0.2.0/24',
    'spfrejectfail yes',
    'rbl zen.example.org',
    'RBL bl.example.net 0.5 "listed for spam"',
    'rblthreshold 1.5',
    'smtpcb off',
    'smtpcbtimeout 10s',
    'smtpcbcachettl 2h',
    'synfp no',
    'netpath yes',
    'netpathmaxhops 12',
    'daemonuser Smtpd',
    'netfactsuser netwatch',
    'avengerprocesslimit 0',
    'avengercpulimit 2m',
    'avengermemorylimit 256M',
    'avengerfilesizelimit 1g',
    'avengeropenfileslimit 64',
    'metricslisten [::1]:9725',
  ].join('\n');
  const c = okConfig(parseConfigText(text, 'x.conf', HOST));
  assert.deepEqual(
    [c.smtpPort, c.bindAddrs, c.hostname, c.etcDir, c.dbDir, c.maxClients, c.maxClientsPerIp, c.maxMsgSizeBytes],
    [2525, ['127.0.0.1', '::1', '192.0.2.1'], 'mail.example.net', '/opt/av/etc', '/opt/av/db', 50, 2, 10 * 1024 * 1024],
  );
  assert.deepEqual(
    [c.maxRcpts, c.maxErrors, c.smtpTimeoutMs, c.dataTimeoutMs, c.greetingDelayMs, c.bareLineEndings],
    [20, 3, 60_000, 120_000, 1500, 'normalize'],
  );
  assert.deepEqual(c.localDomains, ['a.example', 'b.example', 'c.example']);
  assert.deepEqual([c.separator, c.avengerUser, c.avengerTimeoutMs], ['-', 'spamd', 120_000]);
  assert.deepEqual(
    [
      c.daemonUser,
      c.netFactsUser,
      c.avengerProcessLimit,
      c.avengerCpuLimitMs,
      c.avengerMemoryLimitBytes,
      c.avengerFileSizeLimitBytes,
      c.avengerOpenFilesLimit,
    ],
    ['smtpd', 'netwatch', 0, 120_000, 256 * 1024 ** 2, 1024 ** 3, 64],
  );
  assert.deepEqual(c.relayNets, [{ family: 4, address: '10.0.0.0', prefix: 8, text: '10.0.0.0/8' }]);
  assert.deepEqual(c.relayHost, { kind: 'lmtp', host: '::1', port: 24 });
  assert.deepEqual(
    [c.holdQueue, c.holdOnFailure, c.relayTimeoutMs, c.logLevel],
    ['/opt/av/db/queue', true, 30_000, 'debug'],
  );
  assert.deepEqual(
    [c.dnsResolver, c.dnsProtocol, c.dnsTimeoutMs, c.allowDnsFailures],
    ['tangerine', 'http', 2000, true],
  );
  assert.deepEqual(c.dnsServers, [
    { host: '127.0.0.1', port: 5353, text: '127.0.0.1:5353' },
    { host: '::1', port: null, text: '::1' },
    { host: '::1', port: 53, text: '[::1]:53' },
  ]);
  assert.deepEqual([c.spfLocal, c.spfRejectFail], ['include:fwd.example ip4:192.0.2.0/24', true]);
  assert.deepEqual(c.rbls, [
    { zone: 'zen.example.org', score: 1, reason: null },
    { zone: 'bl.example.net', score: 0.5, reason: 'listed for spam' },
  ]);
  assert.deepEqual(
    [c.rblThreshold, c.smtpCallback, c.smtpCallbackTimeoutMs, c.smtpCallbackCacheTtlMs],
    [1.5, false, 10_000, 7_200_000],
  );
  assert.deepEqual([c.synFp, c.synFpDb, c.netPath, c.netPathMaxHops], [false, [], true, 12]);
  assert.deepEqual(c.metricsListen, { host: '::1', port: 9725, text: '[::1]:9725' });
});

test('MetricsListen: an address and a port, IPv6 in brackets', () => {
  const c = okConfig(parseConfigText('MetricsListen 127.0.0.1:9725', 'x.conf', HOST));
  assert.deepEqual(c.metricsListen, { host: '127.0.0.1', port: 9725, text: '127.0.0.1:9725' });
  for (const bad of ['127.0.0.1', '::1:9725', '[127.0.0.1]:9725', 'localhost:9725', '127.0.0.1:0', '[::1]:', ':9725']) {
    const r = parseConfigText(`MetricsListen ${bad}`, 'x.conf', HOST);
    assert.equal(r.kind, 'error', bad);
    if (r.kind === 'error') assert.match(r.errors.map((i) => i.message).join('\n'), /MetricsListen: bad value/, bad);
  }
});

test('bad DNS and Facts values name the directive', () => {
  for (const [line, re] of [
    ['DNSServer example.org', /DNSServer: bad value "example.org"/],
    ['DNSServer 127.0.0.1:99999', /DNSServer: bad value/],
    ['RBL 127.0.0.1', /RBL: bad value/],
    ['RBL zen.example.org lots', /RBL: bad value "zen.example.org lots": expected a number/],
    ['SPFLocal ip4:300.1.1.1', /SPFLocal: bad value/],
    ['SPFLocal redirect=x.example', /SPFLocal: bad value.*mechanisms only/],
    ['RBLThreshold -1', /RBLThreshold: bad value/],
    ['DNSResolver bind', /DNSResolver: bad value/],
  ] as const) {
    const r = parseConfigText(line, 'x.conf', HOST);
    assert.equal(r.kind, 'error', line);
    if (r.kind === 'error') assert.match(r.errors.map((i) => i.message).join('\n'), re, line);
  }
});

test('computed defaults follow the directives they depend on', () => {
  const c = okConfig(parseConfigText('Hostname relay.example.com\nDBDir /srv/avenger\n', 'x.conf', HOST));
  assert.deepEqual(c.localDomains, ['relay.example.com']);
  assert.equal(c.holdQueue, '/srv/avenger/queue');
  const explicit = okConfig(
    parseConfigText('DBDir /srv/avenger\nHoldQueue /data/held\nLocalDomain example.com\n', 'x.conf', HOST),
  );
  assert.deepEqual([explicit.holdQueue, explicit.localDomains], ['/data/held', ['example.com']]);
});

test('a file with several errors reports each one at its line', () => {
  const text = [
    '# asmtpd.conf with mistakes', // 1
    'SMTPPort 99999', // 2
    'SMTPort 25', // 3
    'MaxClients', // 4
    'MaxRcpts 10 20', // 5
    'maxrcpts 30', // 6
    'RelayNet 10.0.0.0/8 \\', // 7
    '  10.0.0.0/40 fe80::/10', // 8
    'HoldOnFailure maybe', // 9
    'Hostname "two words"', // 10
    'DovecotAuth tcp:127.0.0.1:12345', // 11
    'Frobnicate yes', // 12
    'MaxMsgSize 50M # fifty megabytes', // 13
    'Sendmail bin/sendmail -oi', // 14
    'RelayHost ::1', // 15
    'EtcDir "unterminated', // 16
  ].join('\n');
  assert.deepEqual(errorLines(parseConfigText(text, 'bad.conf', HOST)), [
    'bad.conf:2: SMTPPort: bad value "99999": expected a port number from 1 to 65535',
    'bad.conf:3: unknown directive "SMTPort" (did you mean SMTPPort?)',
    'bad.conf:4: MaxClients: missing value (integer >= 1)',
    'bad.conf:5: MaxRcpts: too many values: expected one integer, got 2',
    'bad.conf:6: MaxRcpts: given twice (first at line 5); it takes a single value',
    'bad.conf:7: RelayNet: bad value "10.0.0.0/40": prefix length must be 0 to 32 for IPv4',
    'bad.conf:9: HoldOnFailure: bad value "maybe": expected yes or no (also on/off, true/false, 1/0)',
    'bad.conf:10: Hostname: bad value "two words": expected a domain name: labels of letters, digits and inner hyphens, 1 to 63 characters, separated by dots',
    'bad.conf:11: DovecotAuth: bad value "tcp:127.0.0.1:12345": expected unix:/path or inet:host:port',
    'bad.conf:12: unknown directive "Frobnicate"',
    'bad.conf:13: MaxMsgSize: too many values: expected one size, got 4; a # comment must be on a line of its own',
    'bad.conf:14: Sendmail: bad value "bin/sendmail -oi": the program is an absolute path or a name looked up in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'bad.conf:15: RelayHost: bad value "::1": an IPv6 address must be written in brackets, e.g. [::1]:25',
    'bad.conf:15: RelayHost (line 15) and Sendmail (line 14) are both set: use one of them',
    'bad.conf:16: unterminated double quote',
  ]);
});

test('a repeated single-value directive is an error even with the same value; repeatable ones add up', () => {
  assert.deepEqual(errorLines(parseConfigText('Hostname a.example\n\nHOSTNAME a.example\n', 'd.conf', HOST)), [
    'd.conf:3: Hostname: given twice (first at line 1); it takes a single value',
  ]);
  const c = okConfig(
    parseConfigText('BindAddr 127.0.0.1\nBindAddr ::1\nbindaddr 192.0.2.1 192.0.2.2\n', 'd.conf', HOST),
  );
  assert.deepEqual(c.bindAddrs, ['127.0.0.1', '::1', '192.0.2.1', '192.0.2.2']);
});

test('unknown directives: near misses get a suggestion, others do not', () => {
  const cases: [string, string][] = [
    ['MaxClientPerIP 5', 'unknown directive "MaxClientPerIP" (did you mean MaxClientsPerIP?)'],
    ['maxmsgsiz 5M', 'unknown directive "maxmsgsiz" (did you mean MaxMsgSize?)'],
    ['Port 25', 'unknown directive "Port" (did you mean SMTPPort?)'],
    ['LocalDomains example.org', 'unknown directive "LocalDomains" (did you mean LocalDomain?)'],
    // ("Banner" is now near BlockAtBanner)
    ['Frobnicate hello', 'unknown directive "Frobnicate"'],
    ['dovecotauth /run/x', 'DovecotAuth: bad value "/run/x": expected unix:/path or inet:host:port'],
  ];
  for (const [line, message] of cases) {
    assert.deepEqual(errorLines(parseConfigText(line, 'u.conf', HOST)), [`u.conf:1: ${message}`]);
  }
});

test('warnings: host bits, HoldOnFailure without an MTA, unqualified system host name', () => {
  const r = parseConfigText('RelayNet 10.1.2.3/8\nHoldOnFailure yes\n', 'w.conf', { systemHostname: 'box' });
  assert.equal(r.kind, 'ok');
  assert.deepEqual(warningLines(r), [
    'w.conf: Hostname is not set and the system host name "box" is not fully qualified: set Hostname',
    'w.conf:1: RelayNet: 10.1.2.3/8 has host bits set; using the network 10.0.0.0/8',
    'w.conf:2: HoldOnFailure: has no effect without RelayHost or Sendmail (accepted mail is always held then)',
  ]);
  assert.deepEqual(warningLines(parseConfigText('HoldOnFailure yes\nRelayHost mx.example:25\n', 'w.conf', HOST)), []);
  assert.deepEqual(warningLines(parseConfigText('Hostname box.example\n', 'w.conf', { systemHostname: 'box' })), []);
});

test('warnings: DNSResolver tangerine without DNSServer means a public DoH service', () => {
  assert.deepEqual(warningLines(parseConfigText('DNSTimeout 2s\nDNSResolver tangerine\n', 'w.conf', HOST)), [
    "w.conf:2: DNSResolver: tangerine without DNSServer sends every lookup (client addresses, senders' domains, DNSBL queries) to tangerine's public DoH servers (Cloudflare's 1.1.1.1 and 1.0.0.1), and DNSBLs such as Spamhaus refuse queries from public resolvers: name your own DoH server with DNSServer, or use DNSResolver system (the default) with a local caching resolver such as unbound",
  ]);
  // a DoH server of one's own, the system resolver (given or by default): nothing to say
  for (const text of ['DNSResolver tangerine\nDNSServer 192.0.2.53\n', 'DNSResolver system\n', ''])
    assert.deepEqual(warningLines(parseConfigText(text, 'w.conf', HOST)), [], text);
});

test('a bad value in a directive another default depends on reports only that error', () => {
  assert.deepEqual(errorLines(parseConfigText('DBDir relative/dir\nHostname -bad-\n', 'x.conf', HOST)), [
    'x.conf:1: DBDir: bad value "relative/dir": expected an absolute path (starting with /)',
    'x.conf:2: Hostname: bad value "-bad-": expected a domain name: labels of letters, digits and inner hyphens, 1 to 63 characters, separated by dots',
  ]);
});

test('recipients directives: Separator characters, AvengerUser names, AvengerTimeout range', () => {
  for (const sep of ['+', '-', '=', '_', '^', '~'])
    assert.equal(okConfig(parseConfigText(`Separator ${sep}`, 's.conf', HOST)).separator, sep);
  const bad = [
    'Separator ++',
    'Separator /',
    'AvengerUser 1abc',
    'AvengerUser "two words"',
    'AvengerTimeout 0',
    'AvengerTimeout 2h',
  ].join('\n');
  assert.deepEqual(errorLines(parseConfigText(bad, 's.conf', HOST)), [
    's.conf:1: Separator: bad value "++": expected one character, one of + - = _ ^ ~',
    's.conf:2: Separator: given twice (first at line 1); it takes a single value',
    's.conf:3: AvengerUser: bad value "1abc": expected a user name: letters, digits, _ . -, not starting with a digit, . or -, at most 32 characters',
    's.conf:4: AvengerUser: given twice (first at line 3); it takes a single value',
    's.conf:5: AvengerTimeout: bad value "0": must be between 1s and 1h',
    's.conf:6: AvengerTimeout: given twice (first at line 5); it takes a single value',
  ]);
  // as written in the file: quotes and backslashes are the lexer's (\" is a double quote, "" an empty word)
  for (const value of ['/', '@', '\\"', '.', '%', '!', '*', '|', 'a', '1', '" "', '""', '+-']) {
    assert.equal(parseConfigText(`Separator ${value}`, 's.conf', HOST).kind, 'error', value);
  }
  for (const word of ['"two words"', '.hidden', '-x', 'a/b', 'x'.repeat(33)]) {
    assert.equal(parseConfigText(`AvengerUser ${word}`, 's.conf', HOST).kind, 'error', word);
  }
  // AvengerUser need not exist: the daemon checks it at start
  assert.equal(
    okConfig(parseConfigText('AvengerUser no_such_account_here', 's.conf', HOST)).avengerUser,
    'no_such_account_here',
  );
});

test('files named by directives: DomainFile and AliasFile must exist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-config-'));
  try {
    const domains = join(dir, 'domains');
    const aliases = join(dir, 'aliases');
    writeFileSync(domains, 'example.net bob\n');
    writeFileSync(aliases, 'root: bob\n');
    const good = okConfig(parseConfigText(`DomainFile ${domains}\nAliasFile ${aliases}\n`, 'f.conf', HOST));
    assert.deepEqual([good.domainFile, good.aliasFile], [domains, aliases]);
    assert.deepEqual(
      errorLines(parseConfigText(`DomainFile ${dir}/missing\nAliasFile ${dir}\nDomainFile x\n`, 'f.conf', HOST)),
      [
        `f.conf:1: DomainFile: ${dir}/missing: no such file`,
        `f.conf:2: AliasFile: ${dir}: not a regular file`,
        'f.conf:3: DomainFile: given twice (first at line 1); it takes a single value',
      ],
    );
    assert.deepEqual(errorLines(parseConfigText('AliasFile aliases\n', 'f.conf', HOST)), [
      'f.conf:1: AliasFile: bad value "aliases": expected an absolute path (starting with /)',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('files named by directives: PasswdFile and the Sendmail program must exist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-config-'));
  try {
    const passwd = join(dir, 'passwd');
    const program = join(dir, 'sendmail');
    const notExecutable = join(dir, 'plain');
    writeFileSync(passwd, 'alice:x:1000:1000::/home/alice:/bin/sh\n');
    writeFileSync(program, '#!/bin/sh\nexit 0\n');
    chmodSync(program, 0o755);
    writeFileSync(notExecutable, '');
    chmodSync(notExecutable, 0o644);
    const good = okConfig(parseConfigText(`PasswdFile ${passwd}\nSendmail ${program} -oi -f %s --\n`, 'f.conf', HOST));
    assert.equal(good.passwdFile, passwd);
    assert.deepEqual(good.sendmail, [program, '-oi', '-f', '%s', '--']);

    const text = `PasswdFile ${dir}/missing\nSendmail ${dir}/nope -oi\n`;
    assert.deepEqual(errorLines(parseConfigText(text, 'f.conf', HOST)), [
      `f.conf:1: PasswdFile: ${dir}/missing: no such file`,
      `f.conf:2: Sendmail: ${dir}/nope: no such file`,
    ]);
    const lines = errorLines(parseConfigText(`PasswdFile ${dir}\nSendmail ${notExecutable}\n`, 'f.conf', HOST));
    assert.equal(lines[0], `f.conf:1: PasswdFile: ${dir}: not a regular file`);
    if (process.getuid?.() !== 0) assert.equal(lines[1], `f.conf:2: Sendmail: ${notExecutable}: not executable`);
    // DBDir and HoldQueue need not exist
    okConfig(parseConfigText(`DBDir ${dir}/db\nHoldQueue ${dir}/nowhere/queue\n`, 'f.conf', HOST));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig: reads the file, absolute Config.file, missing file at line 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-config-'));
  try {
    const file = join(dir, 'asmtpd.conf');
    writeFileSync(file, 'SMTPPort 2525\n');
    assert.deepEqual([okConfig(loadConfig(file, HOST)).smtpPort, okConfig(loadConfig(file, HOST)).file], [2525, file]);
    const missing = join(dir, 'nope.conf');
    assert.deepEqual(errorLines(loadConfig(missing, HOST)), [`${missing}: no such file`]);
    assert.deepEqual(errorLines(loadConfig(dir, HOST)), [`${dir}: is a directory, not a file`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('formatIssue', () => {
  assert.equal(formatIssue({ file: 'a.conf', line: 3, message: 'm' }), 'a.conf:3: m');
  assert.equal(formatIssue({ file: 'a.conf', line: 0, message: 'm' }), 'a.conf: m');
});

test('AuthFile and DovecotAuth together are refused', () => {
  const r = parseConfigText('AuthFile /nonexistent/users\nDovecotAuth inet:127.0.0.1:12345', 'a.conf', HOST);
  assert.ok(
    errorLines(r).includes('a.conf:2: AuthFile (line 1) and DovecotAuth (line 2) are both set: use one of them'),
    JSON.stringify(r),
  );
});
