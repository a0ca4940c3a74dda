import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, Socket, type AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import {
  BoundaryConnection,
  BoundaryServer,
  createBoundaryServer,
  handOver,
  type BoundaryHooks,
  type ProxyOrigin,
} from './boundary.js';

// ---- tripwire: what boundary.ts overrides in, or relies on from, the installed smtp-server ----

const FILE = 'src/smtp/boundary.ts';
/** The version the hashes below were taken from. */
const PINNED = '3.21.6';
/** sha256 of Function.prototype.toString() of each library method, as in smtp-server PINNED. */
const OVERRIDDEN: Record<string, string> = {
  'SMTPServer.connect': '9818ea13a1c36459c8faeb45453d428705c921b2cca67765c389558913b1870f',
  // ProxyProtocol (v1 and v2, CIDR peers): the library's useProxy is v1 only, exact addresses
  'SMTPServer._expectsProxyHeader': 'b900129fbb5a986c4dbefa3b3493de42611bcb90be193f903d95319e3136b9ed',
  'SMTPServer._handleProxy': 'b52456c48b0458fe5705b1adb72ec2a6f54c2453cee8bc544c42849e220bcc9c',
  'SMTPConnection.send': 'c33568c0111a58b2d16786c2ffebbeef6f040c6914742bbcae1c3b3b2507efcb',
  'SMTPConnection._parseAddressCommand': '9f368803e4fdff1525b5b5238e974c4d1c49facf2f665c628b01dbabc2ff857e',
  'SMTPConnection.init': '1265a7d7ca8f5510b4ce94ce4c52bdc127a13b6ef912ec7f9dec69be7a662918',
  'SMTPConnection._createParser': '15ca8c360137e06a56c34eb4a4b2aaec0596253f8a3d357e32a8b371054a0d64',
  'SMTPConnection._onCommand': '41c8a1b7a32aa314c86c485179116270ccf19b33619b6f12efd708011391bd85',
  // wrapped on each parser instance (_createParser)
  'SMTPStream._endDataMode': '7de0cf3d06716328049556af82b557e9574389d4b9e42446a39bd8353d0a3564',
};
/** Called by the overrides, with expectations on what they do (see boundary.ts). */
const RELIED_ON: Record<string, string> = {
  'SMTPServer._onError': '01d6f6dc6b8d6e908775357d467ce6a8b6376a42177101b1d013365b09fdf745',
  'SMTPServer._onClientConnect': '530fef2b2700ba7a0e64e3602b9692f784f415ccd5462c74c04d29c99257175a',
  // ProxyProtocol: it asks _expectsProxyHeader whether to guard a socket until connect() (a
  // timeout, server.close() destroying it); the constructor's listener then calls _handleProxy
  // and passes its socketOptions (remoteAddress, remotePort) to connect(): the behaviour test below
  'SMTPServer._acceptSocket': 'f4c69396f94c5c50e7f8aa5a3c30859560a5f43550a56ca66e109ed8c5f35561',
  'SMTPConnection._setListeners': 'cf07ab6f47db09acf796970e44196427a39c0d8f357d207ec797ca08f10027f5',
  'SMTPConnection.connectionReady': '361a2b1de88fbf67ef10e475034bcc7c3cecd09687cf7df361277e80f3eda09f',
};

const installed = (createRequire(import.meta.url)('smtp-server/package.json') as { version: string }).version;
const CLASSES: Record<string, { prototype: object }> = { SMTPServer, SMTPConnection, SMTPStream };

function sourceHash(name: string): string {
  const [cls, method] = name.split('.') as [string, string];
  const fn = (CLASSES[cls]!.prototype as Record<string, unknown>)[method];
  assert.equal(typeof fn, 'function', `smtp-server ${installed} has no ${name}: re-read ${FILE}`);
  return createHash('sha256')
    .update((fn as () => void).toString())
    .digest('hex');
}

test(`tripwire: every smtp-server method boundary.ts overrides is the one of smtp-server ${PINNED}`, () => {
  for (const [name, hash] of Object.entries(OVERRIDDEN)) {
    assert.equal(
      sourceHash(name),
      hash,
      `smtp-server ${installed} changed ${name}: re-read the override in ${FILE} and update the hash (taken from ${PINNED})`,
    );
  }
});

test(`tripwire: every smtp-server method boundary.ts relies on is the one of smtp-server ${PINNED}`, () => {
  for (const [name, hash] of Object.entries(RELIED_ON)) {
    assert.equal(
      sourceHash(name),
      hash,
      `smtp-server ${installed} changed ${name}: re-read what ${FILE} expects of it and update the hash (taken from ${PINNED})`,
    );
  }
});

test('tripwire: the overrides in boundary.ts are exactly the ones with a hash', () => {
  const overrides = (cls: { prototype: object }, base: { prototype: object }, prefix: string): string[] =>
    Object.getOwnPropertyNames(cls.prototype)
      .filter((n) => n !== 'constructor' && n in base.prototype)
      .map((n) => `${prefix}.${n}`);
  const found = [
    ...overrides(BoundaryServer, SMTPServer, 'SMTPServer'),
    ...overrides(BoundaryConnection, SMTPConnection, 'SMTPConnection'),
  ].sort();
  const hashed = Object.keys(OVERRIDDEN)
    .filter((n) => !n.startsWith('SMTPStream.'))
    .sort();
  assert.deepEqual(
    found,
    hashed,
    `the overrides in ${FILE} and the hashes in boundary.test.ts differ: add the hash of each overridden method`,
  );
});

test('tripwire: the private members boundary.ts reads exist with the expected types', async () => {
  const server = createBoundaryServer(quietOptions(), recordingHooks().hooks);
  const port = await listen(server);
  const client = await openClient(port);
  assert.match(await client.line(), /^220 /);
  const conn = [...server.connections][0] as unknown as Record<string, unknown>;
  const where = (member: string): string =>
    `smtp-server ${installed}: ${member} is not what ${FILE} expects: re-read it`;
  assert.ok(conn instanceof BoundaryConnection, where('connect() constructing the connection'));
  assert.equal(conn._server, server, where('SMTPConnection._server'));
  assert.ok(conn._socket instanceof Socket, where('SMTPConnection._socket'));
  for (const flag of ['_ready', '_closing', '_closed', '_upgrading'])
    assert.equal(typeof conn[flag], 'boolean', where(`SMTPConnection.${flag}`));
  assert.equal(typeof conn._unrecognizedCommands, 'number', where('SMTPConnection._unrecognizedCommands'));
  assert.equal(conn._nextHandler, false, where('SMTPConnection._nextHandler'));
  assert.equal(typeof (conn.session as { id?: unknown }).id, 'string', where('SMTPConnection.session'));
  const parser = conn._parser as unknown as Record<string, unknown>;
  assert.ok(parser instanceof SMTPStream, where('SMTPConnection._parser'));
  assert.equal(typeof parser.isClosed, 'boolean', where('SMTPStream.isClosed'));
  assert.equal(typeof parser._dataMode, 'boolean', where('SMTPStream._dataMode'));
  assert.ok(server.connections instanceof Set, where('SMTPServer.connections'));
  assert.equal(
    typeof Object.getOwnPropertyDescriptor(Socket.prototype, 'readyState')?.get,
    'function',
    'node: Socket.prototype.readyState is no getter',
  );
  client.end();
  await close(server);
});

// ---- per instance: each server its own hooks, the library's class untouched ----

test('two servers in one process each report to their own hooks; a plain SMTPServer keeps the library behaviour', async () => {
  const a = recordingHooks(0);
  const b = recordingHooks(50);
  const serverA = createBoundaryServer(quietOptions(), a.hooks);
  const serverB = createBoundaryServer(quietOptions(), b.hooks);
  const plain = new SMTPServer(quietOptions());
  const [portA, portB, portPlain] = await Promise.all([listen(serverA), listen(serverB), listen(plain)]);

  const ca = await openClient(portA);
  assert.match(await ca.line(), /^220 /);
  ca.write('HELO a.example\r\n');
  assert.match(await ca.line(), /^250 /);

  // B: an early talker, held until B's GreetingDelay is over (no 421), reported as abuse to B only
  const cb = await openClient(portB);
  cb.write('HELO b.example\r\n');
  assert.match(await cb.line(), /^220 /);
  assert.match(await cb.line(), /^250 /);

  // the library's own class: its fixed 100 ms and 421 to an early talker are still there
  const cp = await openClient(portPlain);
  cp.write('HELO c.example\r\n');
  assert.match(await cp.line(), /^421 .*You talk too soon/);

  assert.equal(a.seen.ids.size, 1);
  assert.equal(b.seen.ids.size, 1);
  const [idA] = a.seen.ids;
  const [idB] = b.seen.ids;
  assert.notEqual(idA, idB);
  assert.deepEqual(a.seen.commands, ['HELO a.example']);
  assert.deepEqual(b.seen.commands, ['HELO b.example']);
  assert.deepEqual(a.seen.replies, [220, 250]);
  assert.deepEqual(b.seen.replies, [220, 250]);
  assert.deepEqual(a.seen.abuse, []);
  assert.deepEqual(b.seen.abuse, ['pre-greeting']);
  for (const c of [ca, cb, cp]) c.end();
  await Promise.all([close(serverA), close(serverB), close(plain)]);
});

// ---- ProxyProtocol: the header of a listed peer names the client ----

/** A v2 PROXY header (TCP over IPv4) from src:sport to dst:dport, as HAProxy's send-proxy-v2 writes it. */
function v2Header(src: string, sport: number, dst: string, dport: number): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const meta = Buffer.from([0x21, 0x11, 0x00, 12]);
  const addr = Buffer.alloc(12);
  src.split('.').forEach((b, i) => addr.writeUInt8(Number(b), i));
  dst.split('.').forEach((b, i) => addr.writeUInt8(Number(b), 4 + i));
  addr.writeUInt16BE(sport, 8);
  addr.writeUInt16BE(dport, 10);
  return Buffer.concat([sig, meta, addr]);
}

test("ProxyProtocol: a listed peer's v1 and v2 headers name the client of the session; the peer is its ProxyOrigin", async () => {
  const h = recordingHooks(0, ['127.0.0.1']);
  const sessions: { ip: string; port: number }[] = [];
  const server = createBoundaryServer(
    {
      ...quietOptions(),
      onConnect: (session, cb) => {
        sessions.push({ ip: session.remoteAddress, port: session.remotePort });
        cb();
      },
    },
    h.hooks,
  );
  const port = await listen(server);
  const v1 = await openClient(port);
  // the header and the first command in one segment: what follows the header is the session's
  v1.write('PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\nHELO one.example\r\n');
  assert.match(await v1.line(), /^220 /);
  assert.match(await v1.line(), /^250 /);
  const v2 = await openClient(port);
  v2.write(v2Header('198.51.100.9', 40002, '127.0.0.1', 25));
  assert.match(await v2.line(), /^220 /);
  // a health check (v1 UNKNOWN): the peer's own connection, no client named
  const check = await openClient(port);
  check.write('PROXY UNKNOWN\r\n');
  assert.match(await check.line(), /^220 /);
  assert.deepEqual(
    sessions.map((s) => (s.ip === '127.0.0.1' ? { ip: s.ip } : s)),
    [{ ip: '192.0.2.7', port: 40001 }, { ip: '198.51.100.9', port: 40002 }, { ip: '127.0.0.1' }],
  );
  assert.deepEqual(
    h.seen.proxies.map((p) => (p ? [p.peer.ip, p.version] : null)),
    [['127.0.0.1', 1], ['127.0.0.1', 2], null],
  );
  check.end();
  assert.deepEqual(h.seen.commands, ['HELO one.example']);
  v1.end();
  v2.end();
  await close(server);
});

test('ProxyProtocol: a listed peer without a header is closed before any banner; a header from an unlisted peer closes its session', async () => {
  const listed = recordingHooks(0, ['127.0.0.1']);
  const server = createBoundaryServer(quietOptions(), listed.hooks);
  const port = await listen(server);
  const bare = await openClient(port);
  bare.write('EHLO no-header.example\r\n');
  await bare.closed;
  const silent = await openClient(port);
  await silent.closed; // proxyHeaderTimeoutMs
  assert.deepEqual(
    listed.seen.refused.map((r) => [r.id, r.reason, r.peer]),
    [
      [null, 'no-header', '127.0.0.1'],
      [null, 'timeout', '127.0.0.1'],
    ],
  );
  assert.deepEqual(listed.seen.replies, [], 'nothing was sent: no banner');
  await close(server);

  const other = recordingHooks(0, ['192.0.2.1']);
  const server2 = createBoundaryServer(quietOptions(), other.hooks);
  const port2 = await listen(server2);
  for (const header of [
    Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\n'),
    v2Header('192.0.2.7', 1, '127.0.0.1', 25),
  ]) {
    const c = await openClient(port2);
    assert.match(await c.line(), /^220 /);
    c.write(Buffer.concat([header, Buffer.from('HELO after.example\r\n')]));
    await c.closed;
  }
  assert.deepEqual(
    other.seen.refused.map((r) => [typeof r.id, r.reason, r.peer]),
    [
      ['string', 'not-listed', '127.0.0.1'],
      ['string', 'not-listed', '127.0.0.1'],
    ],
  );
  assert.deepEqual(other.seen.commands, [], 'nothing after the header was read as a command');
  await close(server2);

  // without ProxyProtocol a PROXY line is an unknown command, as before
  const none = recordingHooks(0, null);
  const server3 = createBoundaryServer(quietOptions(), none.hooks);
  const port3 = await listen(server3);
  const c = await openClient(port3);
  assert.match(await c.line(), /^220 /);
  c.write('PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\n');
  assert.match(await c.line(), /^5\d\d /);
  assert.deepEqual(none.seen.refused, []);
  c.end();
  await close(server3);
});

// ---- ETRN/ATRN: onVerb answers commands the library lacks, ehloOffer shapes EHLO, handOver gives the socket away ----

test('onVerb answers a command itself; ehloOffer rewrites the AUTH line and adds keywords; handOver stops the library reading', async () => {
  const h = recordingHooks(0);
  let handed: Socket | null = null;
  const server = createBoundaryServer(
    {
      ...quietOptions(),
      disabledCommands: ['STARTTLS'],
      authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5'],
      allowInsecureAuth: true,
    },
    {
      ...h.hooks,
      ehloOffer: () => ({ authMethods: ['CRAM-MD5'], keywords: ['ETRN', 'ATRN'] }),
      onVerb(id, verb, _line, _secure, done) {
        const conn = [...server.connections].find((c) => c.id === id)!;
        if (verb === 'ETRN') {
          conn.send(253, '2.0.0 OK, 1 pending messages for node x.test started');
          done();
          return true;
        }
        if (verb === 'ATRN') {
          conn.send(250, '2.0.0 OK now reversing the connection');
          handed = handOver(conn);
          return true;
        }
        return false;
      },
    },
  );
  const port = await listen(server);
  const c = await openClient(port);
  assert.match(await c.line(), /^220 /);
  c.write('EHLO a.example\r\n');
  const ehlo: string[] = [];
  for (let l = await c.line(); ; l = await c.line()) {
    ehlo.push(l.slice(4));
    if (l.startsWith('250 ')) break;
  }
  assert.ok(ehlo.includes('AUTH CRAM-MD5'), ehlo.join(' | '));
  assert.ok(!ehlo.some((k) => /PLAIN/.test(k)));
  assert.deepEqual(ehlo.slice(-2), ['ETRN', 'ATRN']);
  c.write('ETRN x.test\r\n');
  assert.equal(await c.line(), '253 2.0.0 OK, 1 pending messages for node x.test started');
  c.write('ATRN x.test\r\n');
  assert.equal(await c.line(), '250 2.0.0 OK now reversing the connection');
  const sock = handed as Socket | null;
  assert.ok(sock, 'the socket was handed over');
  assert.equal(server.connections.size, 0, 'the server forgot the connection');
  // what the client sends now is no command for the library: the new owner reads it
  const got = new Promise<string>((resolve) => sock.once('data', (b: Buffer) => resolve(b.toString('latin1'))));
  // handed over paused (nothing is read before the new owner listens): the owner resumes it
  sock.resume();
  c.write('220 customer.test ready\r\n');
  assert.equal(await got, '220 customer.test ready\r\n');
  sock.write('EHLO provider.test\r\n');
  assert.equal(await c.line(), 'EHLO provider.test');
  assert.deepEqual(h.seen.commands, ['EHLO a.example', 'ETRN x.test', 'ATRN x.test']);
  sock.destroy();
  await c.closed;
  await close(server);
});

// ---- helpers ----

interface Seen {
  ids: Set<string>;
  commands: string[];
  replies: number[];
  abuse: string[];
  proxies: (ProxyOrigin | null)[];
  refused: { id: string | null; reason: string; peer: string }[];
}

function recordingHooks(greetingDelayMs = 0, proxyPeers: string[] | null = null): { hooks: BoundaryHooks; seen: Seen } {
  const seen: Seen = { ids: new Set(), commands: [], replies: [], abuse: [], proxies: [], refused: [] };
  const hooks: BoundaryHooks = {
    onInit: (id, _conn, _socket, proxy) => {
      seen.ids.add(id);
      seen.proxies.push(proxy);
    },
    proxyPeers: () => (proxyPeers ? { has: (ip: string) => proxyPeers.includes(ip) } : null),
    proxyHeaderTimeoutMs: () => 1000,
    onProxyRefused: (id, r) => {
      seen.refused.push({ id, reason: r.reason, peer: r.peer.ip });
      // the front end answers 421 and closes; here: close
      if (id !== null) for (const c of servers) for (const conn of c.connections) if (conn.id === id) conn.close();
    },
    onInputEnd: () => {},
    onReply: (id, code) => {
      seen.ids.add(id);
      seen.replies.push(code);
    },
    onCommand: (id, line) => {
      seen.ids.add(id);
      seen.commands.push(line.toString('latin1'));
    },
    greetingDelayMs: () => greetingDelayMs,
    ehloOffer: () => ({ authMethods: null, keywords: [] }),
    onVerb: () => false,
    onAbuse: (id, kind) => {
      seen.ids.add(id);
      seen.abuse.push(kind);
    },
  };
  return { hooks, seen };
}

function quietOptions(): SMTPServerOptions {
  return {
    logger: false,
    disableReverseLookup: true,
    hideSTARTTLS: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    name: 'mx.test',
  };
}

const servers = new Set<SMTPServer>();
function listen(server: SMTPServer): Promise<number> {
  servers.add(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port)),
  );
}

function close(server: SMTPServer): Promise<void> {
  servers.delete(server);
  return new Promise((resolve) => server.close(() => resolve()));
}

interface Client {
  line(): Promise<string>;
  write(s: string | Buffer): void;
  end(): void;
  /** resolves when the server closed the connection */
  closed: Promise<void>;
}

function openClient(port: number, localAddress?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    let buffered = '';
    const lines: string[] = [];
    const waiting: ((l: string) => void)[] = [];
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let i: number;
      while ((i = buffered.indexOf('\r\n')) >= 0) {
        const l = buffered.slice(0, i);
        buffered = buffered.slice(i + 2);
        const w = waiting.shift();
        if (w) w(l);
        else lines.push(l);
      }
    });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
        closed,
        line: () => {
          const l = lines.shift();
          return l !== undefined ? Promise.resolve(l) : new Promise((r) => waiting.push(r));
        },
        write: (s) => void socket.write(s),
        end: () => void socket.destroy(),
      }),
    );
  });
}
