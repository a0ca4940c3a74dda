/**
 * A real SMTP downstream for e2e tests (smtp-server on 127.0.0.1): records every message byte for
 * byte, and can be told how to answer (accept, reject at RCPT/DATA with a given reply, or die in
 * the middle of DATA).
 */
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface SinkMessage {
  from: string;
  to: string[];
  data: Buffer;
}

export type SinkMode =
  | { kind: 'accept' }
  | { kind: 'reject-rcpt'; code: number; text: string }
  | { kind: 'reject-data'; code: number; text: string }
  | { kind: 'die-in-data' };

export interface Sink {
  port: number;
  messages: SinkMessage[];
  connections: number;
  mode: SinkMode;
  close(): Promise<void>;
}

function replyError(code: number, text: string): Error {
  const e = new Error(text) as Error & { responseCode: number };
  e.responseCode = code;
  return e;
}

export async function startSink(mode: SinkMode = { kind: 'accept' }): Promise<Sink> {
  const sink: Sink = { port: 0, messages: [], connections: 0, mode, close: async () => undefined };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onConnect(_s, cb) {
      sink.connections++;
      cb();
    },
    onRcptTo(_a, _s, cb) {
      if (sink.mode.kind === 'reject-rcpt') return cb(replyError(sink.mode.code, sink.mode.text));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      let total = 0;
      stream.on('data', (c: Buffer) => {
        chunks.push(c);
        total += c.length;
        if (sink.mode.kind === 'die-in-data' && total > 0) {
          // kill the connection while the client is still sending
          for (const conn of (server as unknown as { connections: Set<{ _socket: { destroy(): void } }> }).connections)
            conn._socket.destroy();
        }
      });
      stream.on('end', () => {
        if (sink.mode.kind === 'reject-data') return cb(replyError(sink.mode.code, sink.mode.text));
        if (sink.mode.kind === 'die-in-data') return;
        sink.messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
        });
        cb(null, 'Ok: queued as SINK');
      });
    },
  });
  // a sender that resets its connection (a daemon's worker killed with SIGKILL in
  // test/e2e/workers.test.ts) is not the sink's error: smtp-server reports it here
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}
