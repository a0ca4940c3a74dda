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
  /** only the recipients matching `pattern` are refused (the others accepted) */
  | { kind: 'reject-rcpt-matching'; pattern: RegExp; code: number; text: string }
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

/**
 * `port`: listen there (a port a test kept closed until now); default any free port. `host`: the
 * loopback address to listen on (127.0.0.x port 25 for a mail exchanger: needs root)
 */
export async function startSink(mode: SinkMode = { kind: 'accept' }, port = 0, host = '127.0.0.1'): Promise<Sink> {
  const sink: Sink = { port: 0, messages: [], connections: 0, mode, close: async () => undefined };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onConnect(_s, cb) {
      sink.connections++;
      cb();
    },
    onRcptTo(a, _s, cb) {
      if (sink.mode.kind === 'reject-rcpt') return cb(replyError(sink.mode.code, sink.mode.text));
      if (sink.mode.kind === 'reject-rcpt-matching' && sink.mode.pattern.test(a.address))
        return cb(replyError(sink.mode.code, sink.mode.text));
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
  // a client killed mid-session resets its connection (a flush killed with SIGKILL in
  // test/e2e/hold-crash.test.ts, a worker in test/e2e/workers.test.ts): not an error of the sink
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}
