/**
 * A raw SMTP client for tests: exact reply lines, no protocol smarts, any bytes on the wire.
 *
 *   const c = await SmtpClient.connect(port); await c.greeting(); await c.cmd('EHLO x') -> Reply
 */
import { connect, type Socket } from 'node:net';

export interface SmtpReply {
  code: number;
  /** every line as received, without CRLF */
  lines: string[];
  /** the last line ("250 2.0.0 Ok"), the usual thing to assert */
  last: string;
}

export class SmtpClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) }, () => resolve(new SmtpClient(s)));
      s.once('error', reject);
    });
  }

  /** Read one complete (possibly multi-line) reply. */
  async reply(timeoutMs = 10_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
          this.buf = this.buf.slice(pos);
          return { code: Number(line.slice(0, 3)), lines, last: line };
        }
      }
      if (this.closed) throw new Error(`connection closed; buffered: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; buffered: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  greeting(): Promise<SmtpReply> {
    return this.reply();
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async cmd(line: string): Promise<SmtpReply> {
    this.write(line + '\r\n');
    return this.reply();
  }

  /** Wait until the server closes the connection (or timeout). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  /** EHLO, MAIL, RCPT…, DATA, message (dot-stuffed here), "." — returns the final reply. Message must use CRLF. */
  async send(from: string, to: string[], message: string | Buffer, helo = 'client.test'): Promise<SmtpReply> {
    await this.cmd(`EHLO ${helo}`);
    const m = await this.cmd(`MAIL FROM:<${from}>`);
    if (m.code !== 250) return m;
    let ok = 0;
    let lastRcpt: SmtpReply = m;
    for (const t of to) {
      lastRcpt = await this.cmd(`RCPT TO:<${t}>`);
      if (lastRcpt.code === 250) ok++;
    }
    if (!ok) return lastRcpt;
    const d = await this.cmd('DATA');
    if (d.code !== 354) return d;
    this.write(dotStuff(message));
    this.write('.\r\n');
    return this.reply(30_000);
  }
}

/** RFC 5321 §4.5.2: a line starting with "." gets one more. */
export function dotStuff(message: string | Buffer): Buffer {
  const text = typeof message === 'string' ? message : message.toString('latin1');
  return Buffer.from(text.replace(/(^|\r\n)\./g, '$1..'), 'latin1');
}
