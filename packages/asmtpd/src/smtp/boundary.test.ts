import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, Socket, type AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { BoundaryConnection, BoundaryServer, createBoundaryServer, type BoundaryHooks } from './boundary.js';

// ---- tripwire: what boundary.ts overrides in, or relies on from, the installed smtp-server ----

const FILE = 'src/smtp/boundary.ts';
/** The version the hashes below were taken from. */
const PINNED = '3.21.6';
/** sha256 of Function.prototype.toString() of each library method, as in smtp-server PINNED. */
const OVERRIDDEN: Record<string, string> = {
  'SMTPServer.connect': '9818ea13a1c36459c8faeb45453d428705c921b2cca67765c389558913b1870f',
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
  for (const flag of ['_ready', '_closing', '_closed'])
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

// ---- helpers ----

interface Seen {
  ids: Set<string>;
  commands: string[];
  replies: number[];
  abuse: string[];
}

function recordingHooks(greetingDelayMs = 0): { hooks: BoundaryHooks; seen: Seen } {
  const seen: Seen = { ids: new Set(), commands: [], replies: [], abuse: [] };
  const hooks: BoundaryHooks = {
    onInit: (id) => void seen.ids.add(id),
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

function listen(server: SMTPServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port)),
  );
}

function close(server: SMTPServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

interface Client {
  line(): Promise<string>;
  write(s: string): void;
  end(): void;
}

function openClient(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
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
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
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
