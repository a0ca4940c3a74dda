/**
 * Client facts end to end (issue 5): what the facts add to a relayed message — the X-Avenger
 * tokens client-dns (confirmed name only), spf and rbl (only when listed), and the Received-SPF
 * field (RFC 7208 §9.1) for the MAIL FROM check above the Received: line — as the downstream (the
 * sink, RelayHost) receives it. No policy scripts: the recipient has none (provisional accept),
 * and RBLThreshold is high so a listed client is still accepted. Loopback DNS over UDP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, rblName, reverseName, type DnsServer } from '../support/dns-server.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

let dns: DnsServer;
let sink: Sink;
let d: Daemon;
let etc: string;

before(async () => {
  sink = await startSink();
  dns = await startDnsServer({
    doh: false,
    records: {
      [reverseName('127.0.0.60')]: [{ type: 'PTR', domain: 'mail60.example.test' }],
      'mail60.example.test': [{ type: 'A', address: '127.0.0.60' }],
      [reverseName('127.0.0.61')]: [{ type: 'PTR', domain: 'mail61.example.test' }],
      'mail61.example.test': [{ type: 'A', address: '192.0.2.61' }],
      [rblName('127.0.0.60', 'bl1.test')]: [{ type: 'A', address: '127.0.0.2' }],
      [rblName('127.0.0.60', 'bl2.test')]: [{ type: 'A', address: '127.0.0.2' }],
      'pass.example': [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/16 -all' }],
      'fail.example': [{ type: 'TXT', data: 'v=spf1 mx -all' }],
      'softfail.example': [{ type: 'TXT', data: 'v=spf1 ~all' }],
      'temperror.example': [{ type: 'SERVFAIL' }],
      'helo-pass.example': [{ type: 'TXT', data: 'v=spf1 a:mail60.example.test -all' }],
    },
  });
  // a recipient without scripts (its home does not exist): the provisional accept
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, 'rcpt:x:1001:1001::/nonexistent:/bin/sh\n');
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'RelayNet 192.0.2.0/24',
      `RelayHost 127.0.0.1:${sink.port}`,
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
      'DNSTimeout 1s',
      'AllowDNSFailures yes',
      'RBL bl1.test',
      'RBL bl2.test',
      'RBL bl3.test',
      'RBLThreshold 100',
    ].join('\n'),
  });
});

after(async () => {
  await d?.stop();
  await dns?.close();
  await sink?.close();
  if (etc) rmSync(etc, { recursive: true, force: true });
});

interface Trace {
  /** the header fields asmtpd added, in order, unfolded: [name, value] */
  fields: Array<[string, string]>;
  /** the same, as sent: physical lines without CRLF */
  lines: string[];
  clientPort: number;
  id: string;
}

/** Relays one message from `local` and returns the fields asmtpd put above the original header. */
async function relay(local: string, from: string, helo = 'client.example'): Promise<Trace> {
  const before = sink.messages.length;
  const c = await SmtpClient.connect(d.port, '127.0.0.1', local);
  const clientPort = c.socket.localPort!;
  await c.greeting();
  const r = await c.send(from, ['rcpt@a.example'], 'Subject: facts\r\n\r\nbody\r\n', helo);
  c.close();
  assert.match(r.last, /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
  assert.equal(sink.messages.length, before + 1);
  const text = sink.messages.at(-1)!.data.toString('latin1');
  const added = text.slice(0, text.indexOf('Subject: facts\r\n'));
  const fields = added
    .split(/\r\n(?![ \t])/)
    .filter((f) => f !== '')
    .map((f): [string, string] => {
      const colon = f.indexOf(':');
      return [
        f.slice(0, colon),
        f
          .slice(colon + 1)
          .replace(/\r\n[ \t]/g, ' ')
          .trim(),
      ];
    });
  return { fields, lines: added.split('\r\n').filter((l) => l !== ''), clientPort, id: r.last.split(' ').at(-1)! };
}

function xAvengerTokens(t: Trace): string[] {
  const xav = t.fields.find(([n]) => n === 'X-Avenger')?.[1] ?? '';
  return xav.split('; ').filter((x) => !x.startsWith('version='));
}

test('confirmed name, SPF pass, two listings: client-dns, spf=pass, rbl=ZONES; Received-SPF above Received', async () => {
  const t = await relay('127.0.0.60', 's@pass.example');
  assert.deepEqual(
    t.fields.map(([n]) => n),
    ['Received-SPF', 'Received', 'X-Avenger'],
  );
  assert.equal(
    t.fields[0]![1],
    'pass (mx.example.test: domain of s@pass.example designates 127.0.0.60 as permitted sender) ' +
      'client-ip=127.0.0.60; envelope-from="s@pass.example"; helo=client.example; receiver=mx.example.test; ' +
      'identity=mailfrom; mechanism="ip4:127.0.0.0/16";',
  );
  assert.match(
    t.fields[1]![1],
    new RegExp(
      `^from client\\.example \\(mail60\\.example\\.test \\[127\\.0\\.0\\.60\\]\\) by mx\\.example\\.test .* id ${t.id} for <rcpt@a\\.example>; `,
    ),
  );
  assert.deepEqual(xAvengerTokens(t), [
    'receiver=mx.example.test',
    'client-ip=127.0.0.60',
    `client-port=${t.clientPort}`,
    'client-dns=mail60.example.test',
    'spf=pass',
    'rbl=bl1.test bl2.test',
  ]);
});

test('unconfirmed name, SPF fail: no client-dns, spf=fail, no rbl', async () => {
  const t = await relay('127.0.0.61', 'x@fail.example');
  assert.deepEqual(
    t.fields.map(([n]) => n),
    ['Received-SPF', 'Received', 'X-Avenger'],
  );
  assert.equal(
    t.fields[0]![1],
    'fail (mx.example.test: domain of x@fail.example does not designate 127.0.0.61 as permitted sender) ' +
      'client-ip=127.0.0.61; envelope-from="x@fail.example"; helo=client.example; receiver=mx.example.test; ' +
      'identity=mailfrom; mechanism=-all;',
  );
  assert.match(t.fields[1]![1], /^from client\.example \(\[127\.0\.0\.61\]\) by mx\.example\.test /);
  assert.deepEqual(xAvengerTokens(t), [
    'receiver=mx.example.test',
    'client-ip=127.0.0.61',
    `client-port=${t.clientPort}`,
    'spf=fail',
  ]);
});

test('softfail and temperror (with its problem); the null sender is checked as postmaster@HELO', async () => {
  const soft = await relay('127.0.0.62', 'y@softfail.example');
  assert.equal(
    soft.fields[0]![1],
    'softfail (mx.example.test: domain of transitioning y@softfail.example does not designate 127.0.0.62 as permitted sender) ' +
      'client-ip=127.0.0.62; envelope-from="y@softfail.example"; helo=client.example; receiver=mx.example.test; ' +
      'identity=mailfrom; mechanism=~all;',
  );
  assert.deepEqual(xAvengerTokens(soft), [
    'receiver=mx.example.test',
    'client-ip=127.0.0.62',
    `client-port=${soft.clientPort}`,
    'spf=softfail',
  ]);

  const temp = await relay('127.0.0.62', 'z@temperror.example');
  assert.match(
    temp.fields[0]![1],
    /^temperror \(mx\.example\.test: temporary error in processing during lookup of z@temperror\.example: [^)]+\) client-ip=127\.0\.0\.62; envelope-from="z@temperror\.example"; helo=client\.example; receiver=mx\.example\.test; identity=mailfrom; problem=\S.*;$/,
  );
  assert.deepEqual(xAvengerTokens(temp), [
    'receiver=mx.example.test',
    'client-ip=127.0.0.62',
    `client-port=${temp.clientPort}`,
    'spf=temperror',
  ]);

  const bounce = await relay('127.0.0.60', '', 'helo-pass.example');
  assert.equal(
    bounce.fields[0]![1],
    'pass (mx.example.test: domain of postmaster@helo-pass.example designates 127.0.0.60 as permitted sender) ' +
      'client-ip=127.0.0.60; envelope-from=""; helo=helo-pass.example; receiver=mx.example.test; ' +
      'identity=mailfrom; mechanism="a:mail60.example.test";',
  );
  assert.deepEqual(xAvengerTokens(bounce), [
    'receiver=mx.example.test',
    'client-ip=127.0.0.60',
    `client-port=${bounce.clientPort}`,
    'client-dns=mail60.example.test',
    'spf=pass',
    'rbl=bl1.test bl2.test',
  ]);
});

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; a continuation line's leading TAB is
// one of them (Received-SPF's folding once forgot it and wrote 79-character lines)
test('the added fields are folded to lines of at most 78 characters', async () => {
  const long: string[] = [];
  for (const [ip, from] of [
    ['127.0.0.60', 's@pass.example'],
    ['127.0.0.61', 'x@fail.example'],
    ['127.0.0.62', 'y@softfail.example'],
  ] as const) {
    const t = await relay(ip, from);
    long.push(...t.lines.filter((l) => l.length > 78));
  }
  assert.deepEqual(long, []);
});
