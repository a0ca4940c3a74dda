/**
 * A strict SMTP downstream that records the DATA section exactly as it came over the wire
 * (dot-stuffed, with its line ends), for the framing and fuzz suites (issue 7).
 *
 *   const w = await startWireSink(); … RelayHost 127.0.0.1:${w.port} … w.messages, w.commands
 *
 * Only CRLF.CRLF ends the data (as Postfix does); every command line the relay sent is kept,
 * so a test can see an injected `MAIL FROM` even if it did not make a message.
 * `wireProblems(raw)` lists what a lenient downstream could misread in the bytes asmtpd sent:
 * a bare CR or LF (the December 2023 smuggling sequences need one), a NUL, a line that is a
 * lone "." before the end.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface WireMessage {
  from: string;
  to: string[];
  /** the MAIL FROM line as sent, without CRLF (parameters included) */
  mailLine: string;
  /** the DATA section as sent: dot-stuffed, without the final ".\r\n" */
  raw: Buffer;
  /** raw with the stuffing dots removed */
  data: Buffer;
}

export interface WireSink {
  port: number;
  messages: WireMessage[];
  /** every command line received (latin1), in order, over all connections */
  commands: string[];
  connections: number;
  /** DATA commands answered 354 */
  dataCommands: number;
  close(): Promise<void>;
}

export interface WireSinkOptions {
  delay354Ms?: number;
  finalReplyDelayMs?: number;
  /** the reply line for a recipient, or null to accept it */
  rcptReply?: (to: string) => string | null;
  extensions?: string[];
}

const END = Buffer.from('\r\n.\r\n');

export async function startWireSink(opts: WireSinkOptions = {}): Promise<WireSink> {
  const sockets = new Set<Socket>();
  const sink: WireSink = {
    port: 0,
    messages: [],
    commands: [],
    connections: 0,
    dataCommands: 0,
    close: async () => undefined,
  };
  const extensions = opts.extensions ?? ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE 104857600'];
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    sink.connections++;
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    let inData = false;
    let from = '';
    let mailLine = '';
    let to: string[] = [];
    const send = (s: string): void => {
      if (!socket.destroyed) socket.write(s + '\r\n');
    };
    send('220 wire-sink ESMTP');
    const onLine = (line: string): void => {
      sink.commands.push(line);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO')
        return send(
          ['wire-sink', ...extensions].map((e, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${e}`).join('\r\n'),
        );
      if (verb === 'HELO') return send('250 wire-sink');
      if (verb === 'MAIL') {
        const m = /^MAIL FROM:<(.*?)>/i.exec(line);
        if (!m) return send('501 5.5.4 syntax');
        from = m[1]!;
        mailLine = line;
        to = [];
        return send('250 2.1.0 ok');
      }
      if (verb === 'RCPT') {
        const m = /^RCPT TO:<(.*)>/i.exec(line);
        if (!m || mailLine === '') return send('503 5.5.1 need MAIL');
        const refusal = opts.rcptReply?.(m[1]!) ?? null;
        if (refusal) return send(refusal);
        to.push(m[1]!);
        return send('250 2.1.5 ok');
      }
      if (verb === 'DATA') {
        if (to.length === 0) return send('503 5.5.1 need RCPT');
        inData = true;
        sink.dataCommands++;
        if (opts.delay354Ms) {
          setTimeout(() => send('354 go ahead'), opts.delay354Ms);
          return;
        }
        return send('354 go ahead');
      }
      if (verb === 'RSET') {
        from = '';
        mailLine = '';
        to = [];
        return send('250 2.0.0 ok');
      }
      if (verb === 'NOOP') return send('250 2.0.0 ok');
      if (verb === 'QUIT') {
        send('221 2.0.0 bye');
        socket.end();
        return;
      }
      send('502 5.5.1 not implemented');
    };
    socket.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      for (;;) {
        if (inData) {
          // the data section starts right after "354"; an empty one is just ".\r\n"
          let end = -1;
          let skip = 0;
          if (buf.subarray(0, 3).equals(Buffer.from('.\r\n'))) {
            end = 0;
            skip = 3;
          } else {
            const i = buf.indexOf(END);
            if (i >= 0) {
              end = i + 2;
              skip = 3;
            }
          }
          if (end < 0) return;
          const raw = Buffer.from(buf.subarray(0, end));
          buf = buf.subarray(end + skip);
          inData = false;
          sink.messages.push({ from, to, mailLine, raw, data: unstuff(raw) });
          from = '';
          mailLine = '';
          to = [];
          if (opts.finalReplyDelayMs) setTimeout(() => send('250 2.0.0 Ok: queued as WIRE'), opts.finalReplyDelayMs);
          else send('250 2.0.0 Ok: queued as WIRE');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        onLine(line);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  sink.port = (server.address() as AddressInfo).port;
  sink.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return sink;
}

/** RFC 5321 §4.5.2: drop the first "." of every line that starts with one. */
export function unstuff(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  return Buffer.from(text.replace(/(^|\r\n)\./g, '$1'), 'latin1');
}

/** What a lenient or naive downstream could misread in a DATA section as sent (dot-stuffed). */
export function wireProblems(raw: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x0a && raw[i - 1] !== 0x0d) out.push(`bare LF at ${i}`);
    else if (c === 0x0d && raw[i + 1] !== 0x0a) out.push(`bare CR at ${i}`);
    else if (c === 0) out.push(`NUL at ${i}`);
    if (out.length > 5) break;
  }
  const text = raw.toString('latin1');
  // a line that is a lone dot ends the data for every parser; stuffing must have doubled it
  if (/(^|\r\n)\.\r\n/.test(text)) out.push('an unstuffed "." line');
  return out;
}

/** Length in octets (without CRLF) of the longest line of a DATA section. */
export function longestLine(raw: Buffer): number {
  let max = 0;
  let start = 0;
  for (let i = raw.indexOf('\r\n'); i >= 0; i = raw.indexOf('\r\n', i + 2)) {
    max = Math.max(max, i - start);
    start = i + 2;
  }
  return Math.max(max, raw.length - start);
}
