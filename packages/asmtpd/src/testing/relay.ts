/**
 * testing/relay — fixtures for the relay tests, and the Logger and Config other unit tests share
 * (tests only: not shipped).
 *
 * startDownstream(options)   a real smtp-server (SMTP or LMTP) on 127.0.0.1 port 0 (or a unix socket)
 *                            recording connections and received messages byte for byte
 * writeMessage(dir, parts)   an OutgoingMessage with its spool file
 * makeTempDir(label)         a unique temp directory
 * captureLogger()            a Logger that keeps its lines
 * testConfig(overrides)      a complete Config for createRelay
 */
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Config } from '../config/types.js';
import type { Level, Logger } from '../log/logger.js';
import type { LogEvent } from '../log/events.js';
import type { OutgoingMessage } from '../relay/types.js';

export interface ReceivedMessage {
  from: string;
  mailArgs: Record<string, unknown>;
  to: string[];
  data: Buffer;
  connectionId: string;
}

export interface FakeDownstream {
  port: number;
  received: ReceivedMessage[];
  /** TCP connections accepted so far */
  connections: number;
  server: SMTPServer;
  close(): Promise<void>;
}

export interface DownstreamBehaviour {
  lmtp?: boolean;
  hideSMTPUTF8?: boolean;
  /** close idle client connections after this long (smtp-server socketTimeout) */
  socketTimeoutMs?: number;
  /** listen on this unix socket path instead of 127.0.0.1 */
  socketPath?: string;
  /** return an Error (with responseCode) to refuse the recipient */
  onRcpt?: (address: string) => Error | null;
  /**
   * decide the end of data: undefined → 250; an Error → that reply; an array (LMTP) → one reply per
   * recipient; 'hang' → never answer
   */
  onData?: (msg: ReceivedMessage) => Error | (Error | string)[] | string | 'hang' | undefined;
  /** announce and enforce SIZE (RFC 1870) */
  sizeLimitBytes?: number;
  /** destroy the socket as soon as the first data chunk arrives (send a big message) */
  destroyMidData?: boolean;
}

/** An Error that smtp-server sends as "<code> <text>" (enhanced codes hidden, so text is exact). */
export function smtpError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

export async function startDownstream(behaviour: DownstreamBehaviour = {}): Promise<FakeDownstream> {
  const received: ReceivedMessage[] = [];
  const state = { connections: 0 };
  const server = new SMTPServer({
    lmtp: behaviour.lmtp ?? false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: true,
    hideSMTPUTF8: behaviour.hideSMTPUTF8 ?? false,
    logger: false,
    size: behaviour.sizeLimitBytes ?? 50 * 1024 * 1024,
    ...(behaviour.socketTimeoutMs ? { socketTimeout: behaviour.socketTimeoutMs } : {}),
    onConnect(_session: SMTPServerSession, cb: (err?: Error | null) => void) {
      state.connections++;
      cb();
    },
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, cb: (err?: Error | null) => void) {
      cb(behaviour.onRcpt?.(address.address) ?? null);
    },
    onData(
      stream: SMTPServerDataStream,
      session: SMTPServerSession,
      cb: (err?: Error | null, message?: string | (string | Error)[]) => void,
    ) {
      const chunks: Buffer[] = [];
      let destroyed = false;
      stream.on('data', (c: Buffer) => {
        chunks.push(c);
        if (behaviour.destroyMidData && !destroyed) {
          destroyed = true;
          [...server.connections].find((conn) => conn.id === session.id)?._socket.destroy();
        }
      });
      stream.on('end', () => {
        if (destroyed) return;
        const mailFrom = session.envelope.mailFrom;
        const msg: ReceivedMessage = {
          from: mailFrom ? mailFrom.address : '(none)',
          mailArgs: mailFrom ? ((mailFrom.args as Record<string, unknown>) ?? {}) : {},
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          connectionId: session.id,
        };
        const verdict = behaviour.onData?.(msg);
        if (verdict === 'hang') return;
        if (verdict instanceof Error) return cb(verdict);
        received.push(msg);
        cb(null, verdict);
      });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => {
    if (behaviour.socketPath) server.listen(behaviour.socketPath, () => resolve());
    else server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = behaviour.socketPath ? 0 : (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    get connections() {
      return state.connections;
    },
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.connections) c._socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** a unique temp directory, removed when the test process exits */
export async function makeTempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `asmtpd-relay-${label}-`));
  tempDirs.push(dir);
  return dir;
}

let messageCounter = 0;

export async function writeMessage(
  dir: string,
  parts: {
    body: Buffer | string;
    headerPrefix?: string;
    from?: string;
    to?: string[];
    smtputf8?: boolean;
    eightBit?: boolean;
  },
): Promise<OutgoingMessage> {
  const spoolPath = join(dir, `spool-${++messageCounter}`);
  const bytes = typeof parts.body === 'string' ? Buffer.from(parts.body, 'utf8') : parts.body;
  await writeFile(spoolPath, bytes);
  return {
    id: `T${messageCounter}`,
    from: parts.from ?? 'sender@example.org',
    to: parts.to ?? ['rcpt@example.net'],
    smtputf8: parts.smtputf8 ?? false,
    eightBit: parts.eightBit ?? false,
    headerPrefix: Buffer.from(
      parts.headerPrefix ?? 'Received: from test by relay.test; Thu, 21 Nov 2024 05:54:00 +0000\r\n',
      'utf8',
    ),
    spoolPath,
    size: bytes.length,
  };
}

export interface LogLine {
  level: Level;
  event: LogEvent;
  fields: Record<string, unknown>;
}

export function captureLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const logger: Logger & { lines: LogLine[] } = {
    lines,
    log(level, event, fields = {}) {
      lines.push({ level, event, fields });
    },
    info(event, fields) {
      logger.log('info', event, fields);
    },
    warn(event, fields) {
      logger.log('warn', event, fields);
    },
    error(event, fields) {
      logger.log('error', event, fields);
    },
    debug(event, fields) {
      logger.log('debug', event, fields);
    },
    child() {
      return logger;
    },
    setLevel() {},
    flush() {},
  };
  return logger;
}

export function testConfig(overrides: Partial<Config>): Config {
  return {
    file: '/test/asmtpd.conf',
    tlsCerts: [],
    tlsKeys: [],
    tlsMinVersion: 'TLSv1.2',
    authFile: null,
    dovecotAuth: null,
    insecureAuth: false,
    authMaxFailures: 5,
    separator: null,
    domainFile: null,
    aliasFile: null,
    avengerUser: 'avenger',
    avengerTimeoutMs: 60_000,
    daemonUser: 'asmtpd',
    netFactsUser: 'asmtpd-net',
    avengerProcessLimit: 512,
    avengerCpuLimitMs: 60_000,
    avengerMemoryLimitBytes: 1024 ** 3,
    avengerFileSizeLimitBytes: 512 * 1024 ** 2,
    avengerOpenFilesLimit: 1024,
    smtpPort: 25,
    bindAddrs: [],
    hostname: 'relay.test',
    etcDir: '/test/etc',
    dbDir: '/test/db',
    maxClients: 10,
    maxClientsPerIp: 5,
    workers: 1,
    maxMsgSizeBytes: 10_000_000,
    maxRcpts: 100,
    maxErrors: 10,
    smtpTimeoutMs: 60_000,
    dataTimeoutMs: 60_000,
    greetingDelayMs: 0,
    bareLineEndings: 'reject',
    proxyProtocol: [],
    localDomains: ['relay.test'],
    passwdFile: null,
    relayNets: [],
    relayHost: null,
    sendmail: null,
    holdQueue: '/test/db/queue',
    holdOnFailure: false,
    relayTimeoutMs: 5000,
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
    dnsProtocol: 'http',
    dnsTimeoutMs: 5000,
    allowDnsFailures: false,
    spfLocal: null,
    spfHostsFile: null,
    spfRejectFail: false,
    dynamicNameReject: false,
    rbls: [],
    rblThreshold: 1,
    smtpCallback: false,
    smtpCallbackTimeoutMs: 30_000,
    smtpCallbackCacheTtlMs: 86_400_000,
    synFp: false,
    synFpDb: [],
    netPath: false,
    netPathMaxHops: 30,
    logLevel: 'info',
    metricsListen: null,
    ...overrides,
  };
}

/** a TCP port on 127.0.0.1 with nobody listening (bound, then released) */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
