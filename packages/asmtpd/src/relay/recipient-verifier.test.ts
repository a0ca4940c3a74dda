/**
 * The RelayDomain recipient verifier (recipient-verifier.ts over backend-verify.ts) against a real
 * SMTP server on loopback (testing/relay.ts startDownstream, smtp-server) that knows a few
 * recipients and counts connections and RCPTs, with the state database in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { openStateDb, type StateDb } from '../store/state-db.js';
import { captureLogger, closedPort, smtpError, startDownstream, type FakeDownstream } from '../testing/relay.js';
import { createBackendVerifier, MAX_REFUSALS } from './backend-verify.js';
import { createRecipientVerifier, type RecipientVerifier } from './recipient-verifier.js';

interface Backend {
  down: FakeDownstream;
  rcpts: string[];
  maxConcurrent: number;
}

async function backend(valid: string[], opts: { deferred?: string[]; delayMs?: number } = {}): Promise<Backend> {
  const b: Backend = { down: undefined as unknown as FakeDownstream, rcpts: [], maxConcurrent: 0 };
  b.down = await startDownstream({
    onRcpt: (address) => {
      b.rcpts.push(address);
      b.maxConcurrent = Math.max(b.maxConcurrent, b.down.server.connections.size);
      if (opts.deferred?.includes(address)) return smtpError(450, '4.2.0 mailbox busy');
      return valid.includes(address) ? null : smtpError(550, `5.1.1 <${address}>: Recipient address rejected: unknown`);
    },
  });
  return b;
}

function verifier(
  db: StateDb | null,
  o: { now?: () => number; tempfail?: boolean; backoffMs?: number; maxConnections?: number } = {},
): RecipientVerifier {
  const now = o.now ?? Date.now;
  return createRecipientVerifier({
    backends: createBackendVerifier({
      clientName: 'gw.test',
      timeoutMs: 3000,
      backoffMs: o.backoffMs ?? 60_000,
      maxConnections: o.maxConnections ?? 4,
      now,
    }),
    cache: () => db?.rcptVerifyCache ?? null,
    validTtlMs: 86_400_000,
    invalidTtlMs: 3_000_000,
    tempfail: o.tempfail ?? true,
    log: captureLogger(),
    now,
  });
}

const at = (b: Backend) => [{ host: '127.0.0.1', port: b.down.port }];

test('valid and invalid recipients: the backend 2xx accepts, its 5xx is passed on with its text', async () => {
  const b = await backend(['alice@a.test']);
  const v = verifier(null);
  try {
    const ok = await v.verify('alice@a.test', at(b));
    assert.equal(ok.status, 'valid');
    assert.equal(ok.reply, null);
    const no = await v.verify('nobody@a.test', at(b));
    assert.equal(no.status, 'invalid');
    assert.deepEqual(
      { code: no.reply?.code, enhanced: no.reply?.enhanced, text: no.reply?.text },
      { code: 550, enhanced: '5.1.1', text: '<nobody@a.test>: Recipient address rejected: unknown' },
    );
    assert.deepEqual(b.rcpts, ['alice@a.test', 'nobody@a.test']);
    // both on one session: MAIL FROM:<> once, one RCPT each
    assert.equal(b.down.connections, 1);
  } finally {
    await v.close();
    await b.down.close();
  }
});

test('cache: the second question makes no backend query; expiry honoured, invalid sooner; a 4xx is never remembered', async () => {
  const b = await backend(['alice@a.test'], { deferred: ['busy@a.test'] });
  const db = openStateDb(':memory:');
  let clock = 1_000_000;
  const v = verifier(db, { now: () => clock });
  try {
    assert.equal((await v.verify('alice@a.test', at(b))).status, 'valid');
    assert.equal((await v.verify('nobody@a.test', at(b))).status, 'invalid');
    assert.equal((await v.verify('busy@a.test', at(b))).status, 'deferred');
    assert.equal(b.rcpts.length, 3);
    const hit = await v.verify('ALICE@a.test', at(b));
    assert.equal(hit.status, 'cached-valid');
    assert.equal(hit.expires, 1_000_000 + 86_400_000);
    const miss = await v.verify('nobody@a.test', at(b));
    assert.equal(miss.status, 'cached-invalid');
    assert.equal(miss.reply?.code, 550);
    assert.equal(miss.reply?.text, '<nobody@a.test>: Recipient address rejected: unknown');
    assert.equal((await v.verify('busy@a.test', at(b))).status, 'deferred');
    assert.equal(b.rcpts.length, 4, 'only the 4xx was asked again');
    clock += 3_000_000; // the invalid TTL is over, the valid one is not
    assert.equal((await v.verify('nobody@a.test', at(b))).status, 'invalid');
    assert.equal((await v.verify('alice@a.test', at(b))).status, 'cached-valid');
    assert.equal(b.rcpts.length, 5);
    clock += 86_400_000;
    assert.equal((await v.verify('alice@a.test', at(b))).status, 'valid');
    assert.equal(b.rcpts.length, 6);
  } finally {
    await v.close();
    db.close();
    await b.down.close();
  }
});

test('50 concurrent questions for one unknown address make one backend query', async () => {
  const b = await backend([]);
  const v = verifier(null);
  try {
    const all = await Promise.all(Array.from({ length: 50 }, () => v.verify('ghost@a.test', at(b))));
    assert.ok(all.every((r) => r.status === 'invalid' && r.reply?.code === 550));
    assert.equal(all.filter((r) => r.shared).length, 49);
    assert.deepEqual(b.rcpts, ['ghost@a.test']);
  } finally {
    await v.close();
    await b.down.close();
  }
});

test('400 concurrent questions for distinct addresses use at most the pool size of sessions', async () => {
  const valid = Array.from({ length: 400 }, (_, i) => `u${i}@a.test`);
  const b = await backend(valid);
  const v = verifier(null, { maxConnections: 3 });
  try {
    const all = await Promise.all(valid.map((a) => v.verify(a, at(b))));
    assert.ok(all.every((r) => r.status === 'valid'));
    assert.equal(b.rcpts.length, 400);
    assert.ok(b.down.connections <= 3, `${b.down.connections} connections`);
    assert.ok(b.maxConcurrent <= 3);
  } finally {
    await v.close();
    await b.down.close();
  }
});

test(`a session is retired after ${MAX_REFUSALS} refusals (Postfix's error limits)`, async () => {
  const b = await backend([]);
  const v = verifier(null, { maxConnections: 1 });
  try {
    for (let i = 0; i < MAX_REFUSALS * 2; i++) assert.equal((await v.verify(`x${i}@a.test`, at(b))).status, 'invalid');
    assert.equal(b.down.connections, 2);
  } finally {
    await v.close();
    await b.down.close();
  }
});

/** A backend that is down: accepts TCP connections and closes them at once, counting them. */
async function deadBackend(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    n++;
    sockets.add(s);
    s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as AddressInfo).port,
    connections: () => n,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

test('backend down: the fallback answers; without one 451 4.4.1; no connection during the backoff; recovery after', async () => {
  const dead = await deadBackend();
  const b = await backend(['alice@a.test']);
  let clock = 5_000_000;
  const v = verifier(null, { now: () => clock, backoffMs: 60_000 });
  const primary = { host: '127.0.0.1', port: dead.port };
  try {
    const viaFallback = await v.verify('alice@a.test', [primary, ...at(b)]);
    assert.equal(viaFallback.status, 'valid');
    assert.equal(viaFallback.backend, `127.0.0.1:${b.down.port}`);
    assert.equal(dead.connections(), 1);
    // during the backoff the dead primary is skipped without a connection
    for (let i = 0; i < 20; i++) await v.verify(`u${i}@a.test`, [primary, ...at(b)]);
    assert.equal(dead.connections(), 1);
    const alone = await v.verify('bob@a.test', [primary]);
    assert.equal(alone.status, 'tempfail');
    assert.deepEqual([alone.reply?.code, alone.reply?.enhanced], [451, '4.4.1']);
    assert.match(alone.detail ?? '', /not tried again before/);
    assert.equal(dead.connections(), 1);
    // after the backoff it is tried again (still dead: one more connection, then backoff again)
    clock += 60_001;
    assert.equal((await v.verify('carol@a.test', [primary])).status, 'tempfail');
    assert.equal(dead.connections(), 2);
    // after the next backoff: tried again (one connection), and the fallback answers
    clock += 60_001;
    assert.equal((await v.verify('alice@a.test', [primary, ...at(b)])).status, 'valid');
    assert.equal(dead.connections(), 3);
  } finally {
    await v.close();
    await dead.close();
    await b.down.close();
  }
});

test('nobody listening, RcptVerifyTempfail no: accepted unverified; a backend is asked again after the backoff', async () => {
  const port = await closedPort();
  let clock = 1_000;
  const v = verifier(null, { now: () => clock, tempfail: false, backoffMs: 10_000 });
  let b: Backend | null = null;
  try {
    const r = await v.verify('alice@a.test', [{ host: '127.0.0.1', port }]);
    assert.equal(r.status, 'unverified');
    assert.equal(r.reply, null);
    assert.match(r.detail ?? '', /ECONNREFUSED/);
    b = await backend(['alice@a.test']);
    clock += 10_001;
    assert.equal((await v.verify('alice@a.test', at(b))).status, 'valid');
  } finally {
    await v.close();
    await b?.down.close();
  }
});

test('the cache survives reopening the state database', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'verify-db-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const b = await backend(['alice@a.test']);
  try {
    const db1 = openStateDb(join(dir, 'state.sqlite'));
    const v1 = verifier(db1);
    await v1.verify('alice@a.test', at(b));
    await v1.verify('nobody@a.test', at(b));
    await v1.close();
    db1.close();
    const db2 = openStateDb(join(dir, 'state.sqlite'));
    const v2 = verifier(db2);
    assert.equal((await v2.verify('alice@a.test', at(b))).status, 'cached-valid');
    assert.equal((await v2.verify('nobody@a.test', at(b))).status, 'cached-invalid');
    assert.equal(b.rcpts.length, 2);
    await v2.close();
    db2.close();
  } finally {
    await b.down.close();
  }
});
