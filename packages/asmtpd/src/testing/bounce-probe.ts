/**
 * testing/bounce-probe — probe targets and DNS for facts/bounce-probe.test.ts (tests only: not shipped).
 *
 *   startTarget(ip, behaviour, port?)   a real smtp-server (STARTTLS offered, its built-in certificate) on
 *                                       ip:port (default 25) counting TCP connections and recording HELO,
 *                                       TLS, MAIL FROM, RCPT TO and DATA
 *   startScripted(ip, answer, port?)    a raw TCP server answering each command line with answer(line)
 *                                       (null: stay silent); `greeting` null: never greet
 *   fakeResolver(zone)                  a ProbeResolver over an in-memory zone, counting lookups
 *   dnsError(code)                      an error as node's dns.promises gives it
 */
import net from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import type { ProbeResolver } from '../facts/bounce-types.js';

export interface TargetBehaviour {
  /** refuse the connection with this reply (code, text) instead of greeting */
  greeting?: [number, string];
  mailFrom?: [number, string];
  rcpt?: (address: string) => [number, string] | null;
  /** delay the RCPT reply */
  rcptDelayMs?: number;
}

export interface Target {
  ip: string;
  port: number;
  /** TCP connections accepted */
  readonly connections: number;
  helo: string[];
  /** per MAIL FROM: was the session upgraded with STARTTLS */
  secure: boolean[];
  mailFrom: string[];
  rcptTo: string[];
  readonly dataCommands: number;
  close(): Promise<void>;
}

export async function startTarget(ip: string, b: TargetBehaviour = {}, port = 25): Promise<Target> {
  const seen = { connections: 0, dataCommands: 0 };
  const t = { helo: [] as string[], secure: [] as boolean[], mailFrom: [] as string[], rcptTo: [] as string[] };
  const err = (reply: [number, string]): Error => Object.assign(new Error(reply[1]), { responseCode: reply[0] });
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) {
      cb(b.greeting ? err(b.greeting) : null);
    },
    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      t.helo.push(session.hostNameAppearsAs);
      t.secure.push(session.secure);
      t.mailFrom.push(address.address);
      cb(b.mailFrom ? err(b.mailFrom) : null);
    },
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, cb: (err?: Error | null) => void) {
      t.rcptTo.push(address.address);
      const reply = b.rcpt?.(address.address) ?? null;
      setTimeout(() => cb(reply ? err(reply) : null), b.rcptDelayMs ?? 0);
    },
    onData(stream, _session, cb) {
      seen.dataCommands++;
      stream.resume();
      stream.on('end', () => cb(null));
    },
  });
  server.on('error', () => {});
  server.server.on('connection', () => seen.connections++);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  const bound = (server.server.address() as net.AddressInfo).port;
  return {
    ...t,
    ip,
    port: bound,
    get connections() {
      return seen.connections;
    },
    get dataCommands() {
      return seen.dataCommands;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.connections) c._socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface Scripted {
  readonly connections: number;
  /** lines received, per connection */
  transcript: string[][];
  /** connections the client has closed */
  readonly closed: number;
  close(): Promise<void>;
}

export async function startScripted(
  ip: string,
  greeting: string | null,
  answer: (line: string) => string | null,
  port = 25,
): Promise<Scripted> {
  const state = { connections: 0, closed: 0 };
  const transcript: string[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    const lines: string[] = [];
    transcript.push(lines);
    let buffer = '';
    socket.on('error', () => {});
    socket.on('close', () => {
      state.closed++;
      sockets.delete(socket);
    });
    if (greeting !== null) socket.write(`${greeting}\r\n`);
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        const reply = answer(line);
        if (reply !== null) socket.write(`${reply}\r\n`);
        if (reply?.startsWith('221')) socket.end();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return {
    transcript,
    get connections() {
      return state.connections;
    },
    get closed() {
      return state.closed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

type Answer<T> = T | { error: string };

export interface Zone {
  mx?: Record<string, Answer<{ exchange: string; priority: number }[]>>;
  a?: Record<string, Answer<string[]>>;
  aaaa?: Record<string, Answer<string[]>>;
}

export function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

/** Names absent from a table: NXDOMAIN when the name appears nowhere in the zone, else no data. */
export function fakeResolver(zone: Zone): ProbeResolver & { lookups: string[] } {
  const lookups: string[] = [];
  const known = (name: string): boolean =>
    [zone.mx, zone.a, zone.aaaa].some((table) => table !== undefined && name in table);
  const lookup = <T>(type: string, table: Record<string, Answer<T>> | undefined, name: string): Promise<T> => {
    lookups.push(`${type} ${name}`);
    const answer = table?.[name];
    if (answer === undefined) return Promise.reject(dnsError(known(name) ? 'ENODATA' : 'ENOTFOUND'));
    if (typeof answer === 'object' && answer !== null && 'error' in answer)
      return Promise.reject(dnsError(answer.error));
    return Promise.resolve(answer as T);
  };
  return {
    lookups,
    resolveMx: (name) => lookup('MX', zone.mx, name),
    resolve4: (name) => lookup('A', zone.a, name),
    resolve6: (name) => lookup('AAAA', zone.aaaa, name),
  };
}
