/**
 * smtp-dialogue.ts — an SMTP dialogue on a socket that can become its TLS successor: the tests of
 * STARTTLS and AUTH speak through it.
 *
 *   new SmtpDialogue(socket)            .reply(), .cmd(line), .timed(line), .closed(), .listen(tls)
 *   openDialogue(port, {from})          connected, banner read, EHLO sent: {dialogue, ehlo}
 *   startTls(port, {from, tls})         ... then STARTTLS, the handshake, EHLO again:
 *                                       {dialogue, tls, ehloInClear, ehlo}
 * A reply is the whole text up to its last line (`250-…\r\n250 …`), without the final CRLF.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export class SmtpDialogue {
  private buffer = '';
  private waiting: (() => void) | null = null;
  socket: Socket;
  constructor(socket: Socket) {
    this.socket = socket;
    this.listen(socket);
  }
  /** read from `socket` from now on (the TLS socket after STARTTLS) */
  listen(socket: Socket): void {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }
  async reply(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(\d{3}) .*\r\n/m.exec(this.buffer);
      if (m) {
        const end = m.index + m[0].length;
        const text = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end);
        return text.trimEnd();
      }
      if (Date.now() > deadline) throw new Error(`no reply; have ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 50);
      });
    }
  }
  async cmd(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }
  /** the last line of the reply to `line`, and how long it took */
  async timed(line: string): Promise<{ last: string; ms: number }> {
    const t = Date.now();
    const r = await this.cmd(line);
    return { last: r.split('\r\n').at(-1)!, ms: Date.now() - t };
  }
  closed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
    });
  }
}

/** Connect (from the loopback address `from`, if given), read the banner, EHLO. */
export async function openDialogue(
  port: number,
  o: { from?: string } = {},
): Promise<{ dialogue: SmtpDialogue; ehlo: string }> {
  const raw = netConnect({ port, host: '127.0.0.1', ...(o.from ? { localAddress: o.from } : {}) });
  const dialogue = new SmtpDialogue(raw);
  assert.match(await dialogue.reply(), /^220 /);
  return { dialogue, ehlo: await dialogue.cmd('EHLO client.test') };
}

export interface TlsDialogue {
  dialogue: SmtpDialogue;
  tls: TLSSocket;
  ehloInClear: string;
  ehlo: string;
}

/** Connect, EHLO, STARTTLS, handshake with `o.tls` (servername mx.test, no verification), EHLO again. */
export async function startTls(port: number, o: { from?: string; tls?: ConnectionOptions } = {}): Promise<TlsDialogue> {
  const { dialogue, ehlo: ehloInClear } = await openDialogue(port, o);
  assert.match(await dialogue.cmd('STARTTLS'), /^220 /);
  const raw = dialogue.socket;
  raw.removeAllListeners('data');
  const tls = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'mx.test', ...o.tls });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', () => resolve());
    tls.once('error', reject);
  });
  dialogue.listen(tls);
  const ehlo = await dialogue.cmd('EHLO client.test');
  assert.match(ehlo, /^250 /m);
  return { dialogue, tls, ehloInClear, ehlo };
}
