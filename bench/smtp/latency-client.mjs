// A minimal SMTP load client with the same shape as Postfix's smtp-source, but
// timing every message (smtp-source gives no per-message latency).
//
//   sessions parallel SMTP sessions, `messages` messages in all, one recipient,
//   `size` bytes of body (plus a few header lines, like smtp-source -l),
//   no PIPELINING (smtp-source doesn't pipeline either), plain TCP, or with
//   starttls=true: EHLO, STARTTLS, a full TLS handshake (no session resumption:
//   every connection pays for one), EHLO again, then the transaction.
//   reuse=false: connect, 220, EHLO, MAIL, RCPT, DATA, body, 250, QUIT, close
//                per message; latency = connect() call .. 250 after the final dot;
//                banner = connect() call .. the 220 greeting (bannerMs).
//   reuse=true:  one connection per session (like smtp-source -d); latency =
//                MAIL sent .. 250 after the final dot.
// Any reply other than the expected class is an error and counted (the session
// then starts over with a new connection).
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** Makes the message: header lines then `size` bytes of body (76-char lines + CRLF). */
export function makeMessage(from, to, size) {
  const head =
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: bench\r\n` +
    `Message-Id: <bench.${process.pid}@bench.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\n`;
  let body = '';
  const line = 'La La La La La La La La La La La La La La La La La La La La La La La La La'
    .padEnd(76, ' La')
    .slice(0, 76);
  while (body.length + 78 <= size) body += line + '\r\n';
  if (body.length < size) body += 'x'.repeat(Math.max(0, size - body.length - 2)) + '\r\n';
  return Buffer.from(head + body + '.\r\n', 'latin1');
}

/**
 * A connection with a reply reader (multi-line replies: 'NNN-' continues, 'NNN ' ends); also used
 * by bench/verify/run.mjs. localAddress: the source address to bind (e.g. 127.0.0.2), optional.
 */
export class Conn {
  constructor(host, port, localAddress) {
    this.buf = '';
    this.waiter = null;
    this.closed = null;
    this.attach(connect({ host, port, ...(localAddress ? { localAddress } : {}) }));
    this.sock.setNoDelay(true);
  }
  attach(sock) {
    this.sock = sock;
    sock.on('data', (d) => {
      this.buf += d.toString('latin1');
      this.pump();
    });
    const fail = (e) => {
      if (this.sock !== sock) return; // the plain socket under TLS
      this.closed = e ?? new Error('connection closed');
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.reject(this.closed);
      }
    };
    sock.on('error', fail);
    sock.on('close', () => fail(null));
  }
  /** After the 220 to STARTTLS: the handshake (certificates are not checked: a benchmark). */
  startTls() {
    const plain = this.sock;
    plain.removeAllListeners('data');
    return new Promise((resolve, reject) => {
      const t = tlsConnect({ socket: plain, rejectUnauthorized: false }, () =>
        resolve({ protocol: t.getProtocol(), cipher: t.getCipher()?.name }),
      );
      t.once('error', reject);
      this.attach(t);
    });
  }
  pump() {
    if (!this.waiter) return;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) return;
      const line = this.buf.slice(0, nl + 1);
      this.buf = this.buf.slice(nl + 1);
      if (line[3] === '-') continue;
      const w = this.waiter;
      this.waiter = null;
      w.resolve(Number(line.slice(0, 3)));
      return;
    }
  }
  reply() {
    return new Promise((resolve, reject) => {
      if (this.closed && !this.buf.includes('\n')) return reject(this.closed);
      this.waiter = { resolve, reject };
      this.pump();
    });
  }
  async cmd(text, expect) {
    if (text !== null) this.sock.write(text);
    const code = await this.reply();
    if (Math.floor(code / 100) !== expect) throw new Error(`${(text ?? 'greeting').trim().slice(0, 20)} -> ${code}`);
    return code;
  }
  close() {
    this.sock.destroy();
  }
}

/**
 * bannerMs: connect() .. 220 of every connection opened (one per message with reuse=false, one
 * per session with reuse=true), sorted.
 * tls: protocol and cipher of the first STARTTLS handshake.
 * @returns {Promise<{elapsedMs:number, latenciesMs:Float64Array, bannerMs:Float64Array, sent:number, errors:number, firstError?:string, tls?:{protocol:string,cipher:string}}>}
 */
export async function runClient({
  host,
  port,
  sessions,
  messages,
  size,
  reuse,
  from,
  to,
  helo = 'bench-client.test',
  starttls = false,
}) {
  const msg = makeMessage(from, to, size);
  const lat = new Float64Array(messages);
  let next = 0;
  let sent = 0;
  let errors = 0;
  let firstError;
  const banners = [];
  /** protocol and cipher of the first TLS connection */
  let tls;
  const t0 = performance.now();

  async function open() {
    const tc = performance.now();
    const c = new Conn(host, port);
    await c.cmd(null, 2);
    banners.push(performance.now() - tc);
    await c.cmd(`EHLO ${helo}\r\n`, 2);
    if (starttls) {
      await c.cmd('STARTTLS\r\n', 2);
      const negotiated = await c.startTls();
      tls ??= negotiated;
      await c.cmd(`EHLO ${helo}\r\n`, 2);
    }
    return c;
  }
  async function transaction(c) {
    await c.cmd(`MAIL FROM:<${from}>\r\n`, 2);
    await c.cmd(`RCPT TO:<${to}>\r\n`, 2);
    await c.cmd('DATA\r\n', 3);
    await c.cmd(msg, 2);
  }
  async function session() {
    let c = null;
    while (next < messages) {
      const i = next++;
      try {
        if (reuse) {
          if (!c) c = await open();
          const t = performance.now();
          await transaction(c);
          lat[i] = performance.now() - t;
        } else {
          const t = performance.now();
          c = await open();
          await transaction(c);
          lat[i] = performance.now() - t;
          c.sock.write('QUIT\r\n');
          await c.reply().catch(() => 0);
          c.close();
          c = null;
        }
        sent++;
      } catch (e) {
        errors++;
        lat[i] = NaN;
        firstError ??= String(e?.message ?? e);
        if (c) c.close();
        c = null;
      }
    }
    if (c) {
      c.sock.write('QUIT\r\n');
      await c.reply().catch(() => 0);
      c.close();
    }
  }
  await Promise.all(Array.from({ length: sessions }, session));
  const elapsedMs = performance.now() - t0;
  const ok = lat.filter((x) => !Number.isNaN(x)).sort();
  const bannerMs = Float64Array.from(banners).sort();
  return {
    elapsedMs,
    latenciesMs: ok,
    bannerMs,
    sent,
    errors,
    ...(firstError ? { firstError } : {}),
    ...(tls ? { tls } : {}),
  };
}

/**
 * Time to banner on an otherwise idle server: `count` connections one after another (connect,
 * 220, QUIT, close, then gapMs of nothing), each timed from connect() to the 220. The server
 * still gathers its facts for each (they start at connect), but with a gap longer than they take
 * nothing else is running when the next connection comes.
 * @returns {Promise<{bannerMs:Float64Array, errors:number, firstError?:string}>}
 */
export async function probeBanner({ host, port, count, gapMs = 0 }) {
  const out = [];
  let errors = 0;
  let firstError;
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const c = new Conn(host, port);
    try {
      await c.cmd(null, 2);
      out.push(performance.now() - t);
      c.sock.write('QUIT\r\n');
      await c.reply().catch(() => 0);
    } catch (e) {
      errors++;
      firstError ??= String(e?.message ?? e);
    }
    c.close();
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  return { bannerMs: Float64Array.from(out).sort(), errors, ...(firstError ? { firstError } : {}) };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
