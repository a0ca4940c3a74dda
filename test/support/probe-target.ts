/**
 * A target for asmtpd's bounce probe (SMTPCB) in e2e tests: a real SMTP server (smtp-server) on
 * port 25 of a loopback address (127.0.0.2, 127.0.0.3 …; binding port 25 needs root) that
 * answers the probe's RCPT as told, and counts connections so tests can prove caching and sharing.
 *
 *   startProbeTarget(host, mode, port = 25) -> ProbeTarget
 *     mode: {kind:'accept', rcptDelayMs?} | {kind:'reject', code, text} (at RCPT)
 *           | {kind:'stall'} (accepts the TCP connection and never says anything)
 *   ProbeTarget { host, port, connections, sessions: {helo, mailFrom, rcptTo[]}[], close() }
 *     mailFrom is '' for the null sender; close() also ends connections still open
 */
import { createServer, type Server, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

export type ProbeMode =
  | { kind: 'accept'; rcptDelayMs?: number }
  | { kind: 'reject'; code: number; text: string }
  | { kind: 'stall' };

export interface ProbeSession {
  helo: string;
  mailFrom: string;
  rcptTo: string[];
}

export interface ProbeTarget {
  host: string;
  port: number;
  connections: number;
  sessions: ProbeSession[];
  close(): Promise<void>;
}

function replyError(code: number, text: string): Error {
  const e = new Error(text) as Error & { responseCode: number };
  e.responseCode = code;
  return e;
}

export async function startProbeTarget(host: string, mode: ProbeMode, port = 25): Promise<ProbeTarget> {
  const target: ProbeTarget = { host, port, connections: 0, sessions: [], close: async () => undefined };
  const sockets = new Set<Socket>();
  let server: Server;
  if (mode.kind === 'stall') {
    server = createServer((socket) => {
      target.connections++;
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
  } else {
    const byId = new Map<string, ProbeSession>();
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onConnect(session, cb) {
        target.connections++;
        const s: ProbeSession = { helo: '', mailFrom: '', rcptTo: [] };
        byId.set(session.id, s);
        target.sessions.push(s);
        cb();
      },
      onMailFrom(address, session, cb) {
        const s = byId.get(session.id);
        if (s) {
          s.helo = String((session as { hostNameAppearsAs?: string }).hostNameAppearsAs ?? '');
          s.mailFrom = address.address;
        }
        cb();
      },
      onRcptTo(address, session, cb) {
        byId.get(session.id)?.rcptTo.push(address.address);
        if (mode.kind === 'reject') return cb(replyError(mode.code, mode.text));
        if (mode.rcptDelayMs) setTimeout(() => cb(), mode.rcptDelayMs);
        else cb();
      },
    });
    server = smtp.server;
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  target.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return target;
}
