import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSynFpDb, openNetFacts, startNetFacts, synFact, synFpDbFiles, type NetFactsClient } from './client.js';
import { CAP_NET_RAW, hasCapability } from './capability.js';
import { DEFAULT_MODERN_PATH, DEFAULT_PFOS_PATH, parsePfos } from '../synfp/pfos.js';
import type { SynInfo } from '../synfp/syn-packet.js';
import { captureLogger, testConfig } from '../../testing/relay.js';
import type { Account } from '../../recipients/accounts.js';

const SYN: SynInfo = {
  family: 4,
  srcIp: '192.0.2.7',
  srcPort: 40000,
  dstIp: '192.0.2.1',
  dstPort: 25,
  ttl: 60,
  df: 1,
  totalLength: 60,
  window: 5840,
  options: [
    { kind: 'M', value: 1460 },
    { kind: 'S' },
    { kind: 'T', zero: false },
    { kind: 'N' },
    { kind: 'W', value: 2 },
  ],
  mss: 1460,
  quirks: [],
};

test('synFact: fingerprint, OS guess, distance from the matched line, else from the TTL', () => {
  const db = parsePfos('S4:64:1:60:M*,S,T,N,W2:Linux:2.6:test:Linux 2.6 test line\n');
  assert.deepEqual(synFact(SYN, db), { fp: '5840:60:1:60:M1460,S,T,N,W2', os: 'Linux 2.6 test line', hops: 4 });
  assert.deepEqual(synFact({ ...SYN, window: 1 }, db), { fp: '1:60:1:60:M1460,S,T,N,W2', os: null, hops: 4 });
  assert.deepEqual(synFact({ ...SYN, ttl: 120 }, null), { fp: '5840:120:1:60:M1460,S,T,N,W2', os: null, hops: 8 });
  // a `*` line (no distance): the TTL's
  const star = parsePfos('S4:64:1:60:M*,S,T,N,W2:*Scanner:1:test:A scanner\n');
  assert.deepEqual(synFact(SYN, star), { fp: '5840:60:1:60:M1460,S,T,N,W2', os: 'A scanner', hops: 4 });
});

test('loadSynFpDb logs each bad line (ten at most, then a count) and an unreadable file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synfpdb-'));
  try {
    const file = join(dir, 'pf.os');
    writeFileSync(file, ['S4:64:1:60:M*:Linux:2.6:x:ok', ...Array.from({ length: 12 }, () => 'bad')].join('\n'));
    const log = captureLogger();
    const db = loadSynFpDb([file], log);
    assert.equal(db?.signatures.length, 1);
    assert.equal(log.lines.length, 11);
    assert.deepEqual(log.lines[0], {
      level: 'warn',
      event: 'synfp.db_error',
      fields: { file, line: 2, error: 'expected 9 colon-separated fields, found 1' },
    });
    assert.match(String(log.lines[10]!.fields.error), /2 more bad lines/);
    const missing = captureLogger();
    assert.equal(loadSynFpDb([join(dir, 'none')], missing), null);
    assert.deepEqual(
      missing.lines.map((l) => [l.level, l.event]),
      [['warn', 'synfp.db_error']],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadSynFpDb reads several files as one, in order; an unreadable one is logged and left out', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synfpdb-'));
  try {
    const first = join(dir, 'first.os'),
      second = join(dir, 'second.os');
    writeFileSync(first, 'S4:64:1:60:M*,S,T,N,W2:Linux:new::First file\n');
    writeFileSync(second, 'S4:64:1:60:M*,S,T,N,W2:Linux:old::Second file\n@bad\n');
    const log = captureLogger();
    const db = loadSynFpDb([first, join(dir, 'none'), second], log);
    assert.deepEqual(
      db?.signatures.map((s) => [s.file, s.details]),
      [
        [first, 'First file'],
        [second, 'Second file'],
      ],
    );
    assert.equal(synFact(SYN, db).os, 'First file');
    assert.deepEqual(
      log.lines.map((l) => [l.fields.file, l.fields.line ?? null]),
      [
        [join(dir, 'none'), null],
        [second, 2],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('synFpDbFiles: the configured files, else the shipped pf.os.modern then pf.os', () => {
  assert.deepEqual(synFpDbFiles({ synFpDb: ['/etc/a.os', '/etc/b.os'] }), ['/etc/a.os', '/etc/b.os']);
  assert.deepEqual(synFpDbFiles({ synFpDb: [] }), [DEFAULT_MODERN_PATH, DEFAULT_PFOS_PATH]);
});

test('openNetFacts without CAP_NET_RAW: one line, info when automatic, warn when asked for; nothing when both are off', async () => {
  const start = (): Promise<NetFactsClient> => assert.fail('must not start');
  for (const [synFp, netPath, expected] of [
    [null, false, 'info'],
    [true, false, 'warn'],
    [null, true, 'warn'],
    [false, false, null],
  ] as const) {
    const log = captureLogger();
    assert.equal(await openNetFacts(testConfig({ synFp, netPath }), log, { netRaw: false, start }), null);
    assert.deepEqual(
      log.lines.map((l) => [l.level, l.event]),
      expected ? [[expected, 'netfacts.off']] : [],
    );
  }
});

test('openNetFacts: a process that cannot start, or cannot capture, is one line too', async () => {
  const log = captureLogger();
  assert.equal(
    await openNetFacts(testConfig({ synFp: true }), log, {
      netRaw: true,
      start: () => Promise.reject(new Error('boom')),
    }),
    null,
  );
  assert.deepEqual(
    log.lines.map((l) => [l.level, l.event, l.fields.reason]),
    [['warn', 'netfacts.off', 'boom']],
  );
  const fake = {
    pid: 1,
    alive: true,
    netRaw: true,
    captureState: 'capturing SYNs needs CAP_NET_RAW',
    source: () => null,
    close: async () => {},
  };
  const log2 = captureLogger();
  assert.equal(await openNetFacts(testConfig({ synFp: true }), log2, { netRaw: true, start: async () => fake }), fake);
  assert.deepEqual(
    log2.lines.map((l) => [l.level, l.event]),
    [['warn', 'netfacts.start']],
  );
});

const root = hasCapability(CAP_NET_RAW) ? false : 'needs CAP_NET_RAW (root)';

/** As root the process runs as its own account (NetFactsUser): a throwaway system account here. */
function netFactsAccount(): { account: Account; remove(): void } {
  const name = `atnf${randomBytes(3).toString('hex')}`;
  execFileSync('useradd', [
    '--system',
    '--user-group',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    name,
  ]);
  const [, , uid, gid] = execFileSync('getent', ['passwd', name]).toString().split(':');
  return {
    account: { name, uid: Number(uid), gid: Number(gid), gecos: '', home: '/nonexistent', shell: '/usr/sbin/nologin' },
    remove: () => void execFileSync('userdel', [name]),
  };
}

test(
  'the real process: SYNs of loopback connections, routes, capture off by SynFP no, and its death',
  { skip: root },
  async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const log = captureLogger();
    const user = process.getuid?.() === 0 ? netFactsAccount() : null;
    const net = await startNetFacts({
      ports: [port],
      capture: true,
      log,
      ...(user ? { account: user.account } : {}),
    }).catch((err: unknown) => {
      server.close();
      user?.remove();
      throw err;
    });
    try {
      if (user) {
        const status = readFileSync(`/proc/${net.pid}/status`, 'utf8');
        assert.match(
          status,
          new RegExp(
            `^Uid:\\s+${user.account.uid}\\s+${user.account.uid}\\s+${user.account.uid}\\s+${user.account.uid}$`,
            'm',
          ),
          'its own account, not root',
        );
        assert.match(status, /^CapEff:\s+0000000000002000$/m, 'CAP_NET_RAW and nothing else');
        assert.match(status, /^CapAmb:\s+0000000000002000$/m);
        assert.match(status, /^NoNewPrivs:\s+1$/m);
      }
      assert.equal(net.captureState, 'on');
      assert.equal(net.netRaw, true);
      const source = net.source(testConfig({ synFp: true, netPath: true, netPathMaxHops: 5, dnsTimeoutMs: 2000 }))!;
      const local = await new Promise<number>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          resolve(s.localPort!);
          s.destroy();
        });
      });
      const fact = await source.syn('127.0.0.1', local);
      assert.match(fact?.fp ?? '', /^\d+:64:1:60:M\d+,S,T,N,W\d+$/);
      assert.equal(fact?.hops, 0);
      assert.equal(await source.syn('127.0.0.1', local), null, 'taken once');
      assert.deepEqual(await source.route!('127.0.0.1'), { hops: 1, path: ['127.0.0.1'] });

      // SynFP no: capture stops, SYN facts are null; NetPath no too: no source at all
      assert.equal(net.source(testConfig({ synFp: false, netPath: false })), null);
      const off = net.source(testConfig({ synFp: false, netPath: true }))!;
      assert.equal(await off.syn('127.0.0.1', 1), null);
      const state = (): string => net.captureState;
      for (let i = 0; i < 50 && state() !== 'off'; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(state(), 'off');

      process.kill(net.pid, 'SIGKILL');
      for (let i = 0; i < 50 && net.alive; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(net.alive, false);
      assert.equal(await source.syn('127.0.0.1', 2), null);
      assert.equal(await source.route!('127.0.0.1'), null);
      assert.deepEqual(log.lines.filter((l) => l.event === 'netfacts.exit').length, 1);
    } finally {
      await net.close();
      server.close();
      user?.remove();
    }
  },
);

test(
  'as root, the process does not start without its account',
  { skip: process.getuid?.() === 0 ? false : 'root only' },
  async () => {
    await assert.rejects(startNetFacts({ ports: [25], capture: false, log: captureLogger() }), /needs NetFactsUser/);
  },
);
