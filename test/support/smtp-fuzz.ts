/**
 * SMTP session fuzzer (issue 7, item 3): a seeded generator of client sessions and a driver that
 * runs them concurrently against a real asmtpd, with the checks that matter afterwards.
 *
 *   generateSession(seed, index)           -> FuzzSession (the same seed and index give the same bytes)
 *   runSession(port, session)              -> SessionOutcome
 *   startFuzzTarget()                      -> a daemon (RelayHost = a wire sink) set up for fuzzing
 *   runFuzz(target, {seed, sessions, …})   -> FuzzStats
 *   daemonMemory(target)                   -> RSS etc. of the daemon process after a forced GC
 *   checkTarget(target)                    -> the invariants, as a list of problems (empty = fine)
 *
 * Used by test/e2e/fuzz.test.ts (short run in CI) and bench/fuzz/run.mjs (the long run by hand).
 *
 * Session kinds (weights in KINDS): valid dialogues, the same with mutated fields (bytes flipped,
 * inserted NUL/CR/LF/8-bit, fields blown up to 600 B … 70 KB, line ends changed, lines dropped,
 * duplicated or swapped), random bytes, truncated TLS ClientHello records (also after STARTTLS),
 * huge lines and floods of pipelined commands, abrupt ends (FIN or RST at any byte), HTTP and
 * PROXY-protocol openers, early talkers, and SMTP smuggling end-of-data variants followed by an
 * injected transaction from `smuggled@injected.test`. Writes are split at random points with
 * small pauses, so the daemon's parser sees every kind of segment boundary.
 *
 * Clients connect from 127.0.0.1 (in RelayNet) and 127.0.0.2/127.0.0.3 (outside), so the relay
 * decision is fuzzed too: checkTarget() verifies that everything at the downstream was accepted
 * by the daemon (a `data.decision` 250 with the same queue id), exactly once, with clean line
 * ends, and that mail for other domains only ever came from the RelayNet client.
 */
import { connect, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon, type LogLine } from './daemon.js';
import { startWireSink, wireProblems, type WireSink, type WireMessage } from './wire-sink.js';
import { SmtpClient } from './smtp-client.js';

// ── PRNG ──────────────────────────────────────────────────────────────────────────────────────

/** mulberry32: small, fast, good enough to pick fuzz cases; fully determined by the seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  weighted<T extends string>(w: Readonly<Record<T, number>>): T {
    const entries = Object.entries(w) as Array<[T, number]>;
    let x = this.next() * entries.reduce((a, [, v]) => a + v, 0);
    for (const [k, v] of entries) {
      x -= v;
      if (x < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
}

/** One seed per session, from the run's seed and the session index (splitmix-style mixing). */
export function sessionSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

// ── Sessions ──────────────────────────────────────────────────────────────────────────────────

export type Step =
  | { op: 'greeting' }
  | { op: 'write'; data: Buffer }
  | { op: 'read' }
  | { op: 'pause'; ms: number }
  /** FIN: half-close, then wait for the server to close */
  | { op: 'end' }
  /** RST */
  | { op: 'reset' }
  /** send QUIT and wait for the server to close */
  | { op: 'quit' };

export const KINDS = {
  valid: 22,
  mutated: 34,
  random: 8,
  tls: 7,
  huge: 6,
  abrupt: 12,
  opener: 4,
  smuggle: 7,
} as const;
export type SessionKind = keyof typeof KINDS;

export interface FuzzSession {
  index: number;
  kind: SessionKind;
  /** the client's source address: 127.0.0.1 is in the target's RelayNet, the others are not */
  localAddress: string;
  steps: Step[];
}

export const LOCAL_DOMAINS = ['local.test', 'second.test'];
export const LOCAL_USERS = ['alice', 'bob'];
export const RELAY_CLIENT = '127.0.0.1';
const CLIENTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
/** the sender of every injected (smuggled) transaction; no other session uses it */
export const SMUGGLED_SENDER = 'smuggled@injected.test';

const HELO_NAMES = [
  'client.example',
  'mx.example.test',
  'localhost',
  '[127.0.0.1]',
  '[IPv6:::1]',
  'a',
  'x'.repeat(300),
  'caf\xc3\xa9.example',
  'bad\xff.example',
  'under_score.example',
  '-dash.example',
  '',
];
const SENDERS = [
  '',
  'a@remote.example',
  'postmaster',
  'postmaster@local.test',
  'alice@local.test',
  'x@[192.0.2.1]',
  '"quoted sender"@remote.example',
  'caf\xc3\xa9@remote.example',
  '@relay.example:a@remote.example',
  'a@remote.example.',
];
const MAIL_PARAMS = [
  'SIZE=1000',
  'SIZE=99999999999',
  'SIZE=x',
  'BODY=8BITMIME',
  'BODY=7BIT',
  'BODY=BINARYMIME',
  'SMTPUTF8',
  'SMTPUTF8=yes',
  'RET=FULL',
  'ENVID=abc',
  'AUTH=<>',
  'REQUIRETLS',
  'X-UNKNOWN=1',
  'SIZE=1 SIZE=2',
  '=',
  'A=+00+0D+0A',
];
const RCPTS = [
  'alice@local.test',
  'bob@second.test',
  'ALICE@LOCAL.TEST.',
  '"alice"@local.test',
  'postmaster',
  'Postmaster@local.test',
  'nobody@local.test',
  'x@elsewhere.example',
  'X@ELSEWHERE.EXAMPLE.',
  'alice%elsewhere.example@local.test',
  'elsewhere.example!alice@local.test',
  'alice@elsewhere.example@local.test',
  '"alice@elsewhere.example"@local.test',
  '@local.test:x@elsewhere.example',
  'alice@[127.0.0.1]',
  'alice@[192.0.2.9]',
  '"a b"@local.test',
  '\xc3\xbcser@local.test',
  'alice@local.test.elsewhere.example',
];
const RCPT_PARAMS = ['NOTIFY=NEVER', 'NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;x@y', 'X=1'];
const OTHER_COMMANDS = [
  'NOOP',
  'RSET',
  'HELP',
  'VRFY alice',
  'VRFY',
  'EXPN staff',
  'BDAT 10 LAST',
  'AUTH PLAIN AGEAYg==',
  'AUTH LOGIN',
  'STARTTLS',
  'XCLIENT ADDR=127.0.0.1',
  'XFORWARD ADDR=127.0.0.1',
  'WIZ x',
  'SHELL',
  'KILL',
  'TURN',
  'ETRN local.test',
  'ehlo lower.example',
  'mail from:<a@b.example>',
  'QUIT now',
  'DATA extra',
  'MAIL FROM: <a@b.example>',
  'RCPT TO:alice@local.test',
  'MAIL FROM:a@b.example',
  'HELO',
  'EHLO',
  'BOGUS',
];
const NASTY = [
  0x00, 0x0d, 0x0a, 0x7f, 0xff, 0xc3, 0x80, 0x3c, 0x3e, 0x22, 0x5c, 0x40, 0x25, 0x21, 0x3a, 0x20, 0x09, 0x2e, 0x3d,
  0x2b,
];
/** End-of-data look-alikes from the December 2023 SMTP smuggling research (no genuine CRLF.CRLF). */
export const SMUGGLING_EODS = [
  '\n.\n',
  '\n.\r\n',
  '\r.\r',
  '\r\n.\r',
  '\r\n.\n',
  '\r.\r\n',
  '\r.\n',
  '\n.\r',
  '\n\r.\n\r',
  '\r\n\x00.\r\n',
  '\r\n.\x00\r\n',
  '\n..\n',
  '\r\n \r\n.\n',
];

interface Element {
  text: Buffer;
  eol: Buffer;
  /** a reply is due after this element (stepwise sessions wait for it) */
  reply: boolean;
  data?: boolean;
}

const CRLF = Buffer.from('\r\n');
const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const line = (s: string | Buffer, reply = true): Element => ({
  text: typeof s === 'string' ? B(s) : s,
  eol: CRLF,
  reply,
});

function dotStuff(body: string): string {
  return body.replace(/(^|\r\n)\./g, '$1..');
}

function messageBody(rng: Rng, index: number): string {
  const headers = [
    `From: <a@remote.example>`,
    `To: <alice@local.test>`,
    `Subject: fuzz ${index}`,
    `Message-ID: <${index}.${rng.int(1e9)}@remote.example>`,
  ];
  if (rng.chance(0.3))
    headers.push('MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit');
  if (rng.chance(0.1)) headers.push('X-Long: ' + 'h'.repeat(rng.range(900, 5000)));
  if (rng.chance(0.1)) headers.push('X-Folded: a\r\n\tb\r\n c');
  if (rng.chance(0.05)) headers.push('Subject: caf\xc3\xa9 \xff\xfe');
  const lines: string[] = [];
  const n = rng.range(0, 20);
  for (let i = 0; i < n; i++) {
    const r = rng.int(12);
    if (r === 0) lines.push('.');
    else if (r === 1) lines.push('..' + 'x'.repeat(rng.int(5)));
    else if (r === 2) lines.push('.MAIL FROM:<' + SMUGGLED_SENDER + '>');
    else if (r === 3) lines.push('');
    else if (r === 4) lines.push('y'.repeat(rng.range(990, rng.chance(0.2) ? 70_000 : 1100)));
    else if (r === 5) lines.push('\xe4\xf6\xfc 8-bit \xc3\xa9');
    else lines.push(`line ${i} ${rng.bytes(rng.int(40)).toString('base64')}`);
  }
  return headers.join('\r\n') + '\r\n\r\n' + lines.join('\r\n') + (lines.length ? '\r\n' : '');
}

function validDialogue(rng: Rng, index: number): Element[] {
  const out: Element[] = [];
  out.push(line(`${rng.chance(0.8) ? 'EHLO' : 'HELO'} ${rng.chance(0.7) ? 'client.example' : rng.pick(HELO_NAMES)}`));
  const transactions = rng.chance(0.15) ? rng.range(2, 4) : 1;
  for (let t = 0; t < transactions; t++) {
    if (rng.chance(0.1)) out.push(line(rng.pick(['NOOP', 'RSET', 'VRFY alice', 'HELP'])));
    const params = rng.chance(0.25) ? ' ' + rng.pick(MAIL_PARAMS) : '';
    out.push(line(`MAIL FROM:<${rng.pick(SENDERS)}>${params}`));
    const nr = rng.chance(0.8) ? 1 : rng.range(2, 6);
    for (let i = 0; i < nr; i++) {
      const p = rng.chance(0.1) ? ' ' + rng.pick(RCPT_PARAMS) : '';
      out.push(line(`RCPT TO:<${rng.chance(0.5) ? 'alice@local.test' : rng.pick(RCPTS)}>${p}`));
    }
    if (rng.chance(0.9)) {
      out.push(line('DATA'));
      out.push({ text: B(dotStuff(messageBody(rng, index)) + '.'), eol: CRLF, reply: true, data: true });
    }
  }
  return out;
}

function mutateBytes(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return Buffer.from([rng.pick(NASTY)]);
  const at = rng.int(b.length + 1);
  switch (rng.int(9)) {
    case 0: {
      const c = Buffer.from(b);
      c[Math.min(at, c.length - 1)] = rng.int(256);
      return c;
    }
    case 1:
      return Buffer.concat([b.subarray(0, at), Buffer.from([rng.pick(NASTY)]), b.subarray(at)]);
    case 2:
      return Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 16)), b.subarray(at)]);
    case 3:
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 20)))]);
    case 4:
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.max(0, at - 30), at), b.subarray(at)]);
    case 5: {
      // blow a field up: just over the 512-octet command limit, or past the 64 KiB line limit
      const size = rng.pick([520, 1000, 5000, 66_000, 70_000]);
      return Buffer.concat([
        b.subarray(0, at),
        Buffer.alloc(size, rng.pick([0x61, 0x40, 0x2e, 0x3c, 0x22])),
        b.subarray(at),
      ]);
    }
    case 6: {
      const s = b.toString('latin1');
      return B(rng.chance(0.5) ? s.toLowerCase() : s.toUpperCase());
    }
    case 7:
      return b.subarray(0, at);
    default:
      return Buffer.concat([b.subarray(0, at), B(rng.pick(['<', '>', '<>', ':', ' ', '"', '\\', '@', '%']))]);
  }
}

function mutate(rng: Rng, els: Element[]): Element[] {
  const out = els.map((e) => ({ ...e }));
  const n = rng.range(1, 4);
  for (let k = 0; k < n && out.length; k++) {
    const i = rng.int(out.length);
    const e = out[i]!;
    switch (rng.int(8)) {
      case 0:
      case 1:
      case 2:
        e.text = mutateBytes(rng, e.text);
        break;
      case 3:
        e.eol = B(rng.pick(['\n', '\r', '', '\r\r\n', '\n\r', '\r\n\r\n', '\x00\r\n']));
        break;
      case 4:
        out.splice(i, 1);
        break;
      case 5:
        out.splice(i, 0, { ...e });
        break;
      case 6: {
        const j = rng.int(out.length);
        out[i] = out[j]!;
        out[j] = e;
        break;
      }
      default:
        out.splice(i, 0, line(rng.pick(OTHER_COMMANDS)));
    }
  }
  return out;
}

/** A TLS 1.2/1.3 ClientHello record (with SNI), as a client that thinks it may start TLS sends. */
function clientHello(rng: Rng): Buffer {
  const sni = B('mx.example.test');
  const ext = Buffer.concat([
    Buffer.from([0x00, 0x00]),
    u16(sni.length + 5),
    u16(sni.length + 3),
    Buffer.from([0x00]),
    u16(sni.length),
    sni,
    Buffer.from([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]),
  ]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    rng.bytes(32),
    Buffer.from([0x20]),
    rng.bytes(32),
    u16(4),
    Buffer.from([0x13, 0x01, 0xc0, 0x2f]),
    Buffer.from([0x01, 0x00]),
    u16(ext.length),
    ext,
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, 0, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(hs.length), hs]);
}
function u16(n: number): Buffer {
  return Buffer.from([(n >> 8) & 0xff, n & 0xff]);
}

/** Turn elements into steps: stepwise (wait for each reply) or pipelined, writes split at random. */
function toSteps(rng: Rng, els: Element[], steps: Step[]): void {
  const stepwise = rng.chance(0.6);
  let pending: Buffer[] = [];
  const flush = (): void => {
    if (!pending.length) return;
    const all = Buffer.concat(pending);
    pending = [];
    // split into a few segments; sometimes a single byte at a time around line ends
    const pieces = rng.chance(0.3) ? rng.range(2, 6) : 1;
    let pos = 0;
    for (let p = 0; p < pieces && pos < all.length; p++) {
      const end =
        p === pieces - 1 ? all.length : Math.min(all.length, pos + 1 + rng.int(Math.max(1, all.length - pos)));
      steps.push({ op: 'write', data: all.subarray(pos, end) });
      if (end < all.length && rng.chance(0.5)) steps.push({ op: 'pause', ms: rng.int(4) });
      pos = end;
    }
    if (pos < all.length) steps.push({ op: 'write', data: all.subarray(pos) });
  };
  for (const e of els) {
    pending.push(e.text, e.eol);
    // DATA must be answered before the message in a correct client; the fuzzer sometimes does not wait
    const mustWait = stepwise || (e.text.toString('latin1').toUpperCase() === 'DATA' && rng.chance(0.7));
    if (e.reply && mustWait) {
      flush();
      steps.push({ op: 'read' });
    }
  }
  flush();
  if (!stepwise) steps.push({ op: 'read' });
}

function ending(rng: Rng, steps: Step[]): void {
  const r = rng.int(10);
  if (r < 5) steps.push({ op: 'quit' });
  else if (r < 7) steps.push({ op: 'end' });
  else steps.push({ op: 'reset' });
}

/** Session `index` of `seed`; `only` forces the kind (the rest is drawn as usual). */
export function generateSession(seed: number, index: number, only?: SessionKind): FuzzSession {
  const rng = new Rng(sessionSeed(seed, index));
  const drawn = rng.weighted(KINDS);
  const kind = only ?? drawn;
  const localAddress = rng.pick(CLIENTS);
  const steps: Step[] = [];
  switch (kind) {
    case 'valid':
      steps.push({ op: 'greeting' });
      toSteps(rng, validDialogue(rng, index), steps);
      ending(rng, steps);
      break;
    case 'mutated':
      steps.push({ op: 'greeting' });
      toSteps(rng, mutate(rng, validDialogue(rng, index)), steps);
      ending(rng, steps);
      break;
    case 'random': {
      if (rng.chance(0.7)) steps.push({ op: 'greeting' });
      const n = rng.range(1, 4);
      for (let i = 0; i < n; i++) {
        let b = rng.bytes(rng.range(1, rng.chance(0.1) ? 20_000 : 600));
        // sprinkle line ends so the command parser sees many "lines"
        if (rng.chance(0.6)) for (let j = 0; j < b.length; j += rng.range(5, 80)) b[j] = rng.chance(0.5) ? 0x0a : 0x0d;
        if (rng.chance(0.3)) b = Buffer.concat([B(rng.pick(['MAIL FROM:<', 'RCPT TO:<', 'EHLO ', 'DATA\r\n'])), b]);
        steps.push({ op: 'write', data: b }, { op: 'read' });
      }
      ending(rng, steps);
      break;
    }
    case 'tls': {
      if (rng.chance(0.7)) steps.push({ op: 'greeting' });
      if (rng.chance(0.5)) {
        steps.push({ op: 'write', data: B(rng.chance(0.5) ? 'EHLO client.example\r\nSTARTTLS\r\n' : 'STARTTLS\r\n') });
        if (rng.chance(0.5)) steps.push({ op: 'read' });
      }
      const hello = clientHello(rng);
      const cut = rng.chance(0.2) ? hello.length : rng.range(1, hello.length);
      steps.push({ op: 'write', data: hello.subarray(0, cut) });
      if (rng.chance(0.3)) steps.push({ op: 'write', data: rng.bytes(rng.range(1, 300)) });
      steps.push({ op: 'read' });
      steps.push(rng.chance(0.5) ? { op: 'reset' } : { op: 'end' });
      break;
    }
    case 'huge': {
      steps.push({ op: 'greeting' });
      const r = rng.int(5);
      if (r === 0)
        steps.push(
          { op: 'write', data: Buffer.concat([B('NOOP '), Buffer.alloc(rng.range(513, 3000), 0x61), CRLF]) },
          { op: 'read' },
        );
      else if (r === 1)
        steps.push({ op: 'write', data: Buffer.alloc(rng.range(65_000, 200_000), 0x41) }, { op: 'read' });
      else if (r === 2) steps.push({ op: 'write', data: B('NOOP\r\n'.repeat(rng.range(100, 2000))) }, { op: 'read' });
      else if (r === 3) {
        const rcpts = Array.from(
          { length: rng.range(90, 300) },
          (_, i) => `RCPT TO:<u${i}@elsewhere.example>\r\n`,
        ).join('');
        steps.push(
          { op: 'write', data: B(`EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\n${rcpts}RSET\r\n`) },
          { op: 'read' },
        );
      } else {
        const big = 'Subject: big\r\n\r\n' + ('z'.repeat(rng.range(1000, 200_000)) + '\r\n').repeat(rng.range(1, 3));
        steps.push(
          {
            op: 'write',
            data: B(`EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n`),
          },
          { op: 'read' },
          { op: 'write', data: B(big + '.\r\n') },
          { op: 'read' },
        );
      }
      ending(rng, steps);
      break;
    }
    case 'abrupt': {
      steps.push({ op: 'greeting' });
      const els = rng.chance(0.5) ? validDialogue(rng, index) : mutate(rng, validDialogue(rng, index));
      const all = Buffer.concat(els.flatMap((e) => [e.text, e.eol]));
      const cut = rng.int(all.length + 1);
      steps.push({ op: 'write', data: all.subarray(0, cut) });
      if (rng.chance(0.5)) steps.push({ op: 'pause', ms: rng.int(30) });
      steps.push(rng.chance(0.6) ? { op: 'reset' } : { op: 'end' });
      break;
    }
    case 'opener': {
      const r = rng.int(5);
      if (r === 0)
        steps.push({ op: 'write', data: B('GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n') }, { op: 'read' });
      else if (r === 1)
        steps.push(
          { op: 'write', data: B('PROXY TCP4 192.0.2.1 192.0.2.2 1234 25\r\nEHLO x.example\r\n') },
          { op: 'read' },
        );
      else if (r === 2)
        steps.push(
          { op: 'write', data: B('EHLO early.example\r\nMAIL FROM:<a@remote.example>\r\n') },
          { op: 'greeting' },
          { op: 'read' },
        );
      else if (r === 3) steps.push({ op: 'greeting' });
      else steps.push({ op: 'greeting' }, { op: 'write', data: B('POST /x HTTP/1.0\r\n') }, { op: 'read' });
      ending(rng, steps);
      break;
    }
    case 'smuggle': {
      steps.push({ op: 'greeting' });
      const eod = rng.pick(SMUGGLING_EODS);
      const rcpt = rng.pick(['alice@local.test', 'x@elsewhere.example']);
      const head = `EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`;
      const body =
        `Subject: first\r\n\r\nfirst${eod}MAIL FROM:<${SMUGGLED_SENDER}>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n` +
        `Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n`;
      if (rng.chance(0.5)) {
        steps.push({ op: 'write', data: B(head) }, { op: 'read' });
        toSteps(rng, [{ text: B(body), eol: Buffer.alloc(0), reply: true }], steps);
      } else {
        toSteps(rng, [{ text: B(head + body), eol: Buffer.alloc(0), reply: true }], steps);
      }
      ending(rng, steps);
      break;
    }
  }
  return { index, kind, localAddress, steps };
}

// ── Driver ────────────────────────────────────────────────────────────────────────────────────

export interface SessionOutcome {
  /** reply codes seen (last line of each reply) */
  codes: number[];
  /** replies that suggest a bug in the daemon (451 4.3.0, smtp-server's internal error) */
  suspicious: string[];
  /** the 4xx replies (other than 421), as text */
  transient: string[];
  closedByServer: boolean;
  /** the driver had to give up waiting and destroyed the socket */
  gaveUp: boolean;
  connectError: string | null;
  ms: number;
}

export interface DriverOptions {
  /** how long to wait for a reply after a 'read' step */
  readTimeoutMs?: number;
  /** hard limit for a whole session */
  sessionTimeoutMs?: number;
}

export function runSession(port: number, s: FuzzSession, opts: DriverOptions = {}): Promise<SessionOutcome> {
  const readTimeout = opts.readTimeoutMs ?? 400;
  const started = Date.now();
  const out: SessionOutcome = {
    codes: [],
    suspicious: [],
    transient: [],
    closedByServer: false,
    gaveUp: false,
    connectError: null,
    ms: 0,
  };
  return new Promise((resolve) => {
    let socket: Socket;
    let text = '';
    let scanned = 0;
    let lines = 0;
    let closed = false;
    let connected = false;
    let wake: (() => void) | null = null;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(hard);
      out.ms = Date.now() - started;
      if (!closed) socket.destroy();
      resolve(out);
    };
    const hard = setTimeout(() => {
      out.gaveUp = true;
      finish();
    }, opts.sessionTimeoutMs ?? 15_000);
    const waitFor = (pred: () => boolean, ms: number): Promise<void> =>
      new Promise((r) => {
        if (pred() || closed) return r();
        const t = setTimeout(() => {
          wake = null;
          r();
        }, ms);
        wake = () => {
          if (pred() || closed) {
            clearTimeout(t);
            wake = null;
            r();
          }
        };
      });
    socket = connect({ port, host: '127.0.0.1', localAddress: s.localAddress });
    socket.setNoDelay(true);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!lines && !text && err.code && /ECONNREFUSED|EADDRNOTAVAIL/.test(err.code)) out.connectError = err.code;
    });
    socket.on('data', (d: Buffer) => {
      if (text.length < 1_000_000) text += d.toString('latin1');
      for (let nl = text.indexOf('\r\n', scanned); nl >= 0; nl = text.indexOf('\r\n', scanned)) {
        const l = text.slice(scanned, nl);
        scanned = nl + 2;
        if (/^\d{3} /.test(l)) {
          lines++;
          out.codes.push(Number(l.slice(0, 3)));
          if (/^451 4\.3\.0|internal server error/i.test(l)) out.suspicious.push(l);
          else if (/^4(?!21)/.test(l)) out.transient.push(l.slice(0, 80));
        } else if (!/^\d{3}-/.test(l)) {
          lines++;
          out.suspicious.push(`not a reply: ${JSON.stringify(l.slice(0, 100))}`);
        }
      }
      wake?.();
    });
    socket.on('close', () => {
      closed = true;
      if (!done) out.closedByServer = true;
      wake?.();
    });
    socket.once('connect', async () => {
      connected = true;
      try {
        for (const st of s.steps) {
          if (closed) break;
          switch (st.op) {
            case 'greeting':
              await waitFor(() => lines >= 1, 2000);
              break;
            case 'write':
              if (!socket.destroyed && socket.writable) socket.write(st.data);
              break;
            case 'read': {
              const have = lines;
              await waitFor(() => lines > have, readTimeout);
              break;
            }
            case 'pause':
              await new Promise((r) => setTimeout(r, st.ms));
              break;
            case 'end':
              if (socket.writable) socket.end();
              await waitFor(() => false, 1000);
              break;
            case 'reset':
              socket.resetAndDestroy();
              break;
            case 'quit': {
              if (socket.writable) socket.write('QUIT\r\n');
              await waitFor(() => false, 1500);
              break;
            }
          }
        }
      } finally {
        finish();
      }
    });
    socket.once('close', () => {
      // closed before 'connect' (refused): the step loop never ran, nothing else will finish it
      if (!connected) finish();
    });
  });
}

// ── Target ────────────────────────────────────────────────────────────────────────────────────

export interface FuzzTarget {
  daemon: Daemon;
  sink: WireSink;
  dir: string;
  /** tallies drained from the daemon's log and the sink (see drain()) */
  tally: Tally;
  stop(): Promise<void>;
}

export interface Tally {
  events: Record<string, number>;
  /** queue ids the daemon answered 250 at the end of DATA */
  acceptedTids: Set<string>;
  /** queue ids the daemon refused at the end of DATA, with the reply */
  refusedTids: Map<string, string>;
  /** queue ids seen at the downstream */
  deliveredTids: Map<string, number>;
  sinkMessages: number;
  /** error-level lines and lines with a stack, grouped by event + message */
  errors: Map<string, { count: number; example: LogLine }>;
  /** session.error lines for a socket the client dropped in a transaction (not a bug) */
  socketErrors: number;
  /** problems found in what reached the downstream */
  sinkProblems: string[];
  nonJsonStderr: string[];
}

const BENIGN_SOCKET_ERROR = /^(read |write )?(ECONNRESET|EPIPE|ETIMEDOUT)\b|socket hang up|This socket has been ended/;

/**
 * A daemon as the fuzzer wants it: RelayHost = a wire sink, RelayNet 127.0.0.1/32 only, two local
 * domains with two users (PasswdFile), limits raised so the fuzzer's concurrency is not refused.
 * NODE_OPTIONS gives the daemon a preload that runs a full GC and reports its memory on SIGUSR2
 * (the daemon is another process; see daemonMemory()).
 */
export async function startFuzzTarget(extraConf = ''): Promise<FuzzTarget> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-fuzz-'));
  chmodSync(dir, 0o755);
  const passwd = join(dir, 'passwd');
  writeFileSync(
    passwd,
    LOCAL_USERS.map((u, i) => `${u}:x:${2001 + i}:${2001 + i}::/nonexistent/${u}:/bin/sh\n`).join(''),
  );
  chmodSync(passwd, 0o644);
  const preload = join(dir, 'gc-preload.cjs');
  writeFileSync(preload, GC_PRELOAD);
  chmodSync(preload, 0o644);
  const sink = await startWireSink();
  const conf = [
    `RelayHost 127.0.0.1:${sink.port}`,
    `RelayNet ${RELAY_CLIENT}/32`,
    ...LOCAL_DOMAINS.map((d) => `LocalDomain ${d}`),
    `PasswdFile ${passwd}`,
    'MaxClients 2000',
    'MaxClientsPerIP 1000',
    'MaxMsgSize 1M',
    extraConf,
  ].join('\n');
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${saved ? saved + ' ' : ''}--require ${preload}`;
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ conf });
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
  const tally: Tally = {
    events: {},
    acceptedTids: new Set(),
    refusedTids: new Map(),
    deliveredTids: new Map(),
    sinkMessages: 0,
    errors: new Map(),
    socketErrors: 0,
    sinkProblems: [],
    nonJsonStderr: [],
  };
  let partial = '';
  daemon.proc.stderr!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const l = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!l.startsWith('{') && tally.nonJsonStderr.length < 50) tally.nonJsonStderr.push(l);
    }
  });
  return {
    daemon,
    sink,
    dir,
    tally,
    async stop() {
      await daemon.stop();
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const GC_PRELOAD = `
// asmtpd fuzz harness: full GC + memory report on SIGUSR2 (loaded with NODE_OPTIONS=--require)
const v8 = require('node:v8');
const vm = require('node:vm');
v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc');
process.on('SIGUSR2', () => {
  gc(); gc();
  setTimeout(() => {
    // the strongest GC V8 offers: compacts and gives freed pages back to the system
    try { gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }); } catch { gc(); }
    if (process.env.ASMTPD_FUZZ_HEAPSNAP) require('node:v8').writeHeapSnapshot(process.env.ASMTPD_FUZZ_HEAPSNAP + '-' + Date.now() + '.heapsnapshot');
    const m = process.memoryUsage();
    process.stderr.write(JSON.stringify({ level: 'info', event: 'fuzz.memory', pid: process.pid, rss: m.rss,
      heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + '\\n');
  }, 200);
});
`;

/** Move the daemon's log lines and the sink's messages into the tally (keeps memory flat on long runs). */
export function drain(t: FuzzTarget): void {
  const logs = t.daemon.logs.splice(0);
  for (const l of logs) {
    t.tally.events[l.event] = (t.tally.events[l.event] ?? 0) + 1;
    if (l.event === 'data.decision' && typeof l.tid === 'string') {
      if (typeof l.reply === 'string' && l.reply.startsWith('250')) t.tally.acceptedTids.add(l.tid);
      else t.tally.refusedTids.set(l.tid, String(l.reply));
    }
    if (l.event === 'fuzz.memory') continue;
    const msg = String(l.error ?? l.reason ?? '');
    if (l.event === 'session.error' && !('stack' in l) && BENIGN_SOCKET_ERROR.test(msg)) {
      t.tally.socketErrors++;
      continue;
    }
    if (
      l.level === 'error' ||
      l.level === 'fatal' ||
      'stack' in l ||
      l.event === 'daemon.error' ||
      l.event === 'session.error'
    ) {
      const key = `${l.event}: ${msg.slice(0, 120)}`;
      const e = t.tally.errors.get(key);
      if (e) e.count++;
      else t.tally.errors.set(key, { count: 1, example: l });
    }
  }
  for (const m of t.sink.messages.splice(0)) checkSinkMessage(t.tally, m);
  t.sink.commands.splice(0).forEach((c) => checkSinkCommand(t.tally, c));
}

function isLocalRecipient(addr: string): boolean {
  if (addr.toLowerCase() === 'postmaster') return true;
  const at = addr.lastIndexOf('@');
  if (at < 0) return false;
  return LOCAL_DOMAINS.includes(
    addr
      .slice(at + 1)
      .toLowerCase()
      .replace(/\.$/, ''),
  );
}

function checkSinkMessage(t: Tally, m: WireMessage): void {
  t.sinkMessages++;
  const problem = (p: string): void => {
    if (t.sinkProblems.length < 100) t.sinkProblems.push(p);
  };
  // our fields come first; unfold them (a long HELO folds the Received line anywhere)
  const head = m.data
    .subarray(0, 8192)
    .toString('latin1')
    .replace(/\r\n[ \t]+/g, ' ');
  const rec = /^Received: from \S+ \(([^)]*)\)[^\r\n]*?\bid ([0-9A-Z]+)\b/m.exec(head);
  const tid = rec?.[2] ?? '';
  if (!rec) problem(`message without our Received field: ${JSON.stringify(head.slice(0, 200))}`);
  else t.deliveredTids.set(tid, (t.deliveredTids.get(tid) ?? 0) + 1);
  for (const p of wireProblems(m.raw)) problem(`${tid}: ${p}`);
  if (m.from === SMUGGLED_SENDER)
    problem(`${tid}: an injected transaction (from ${SMUGGLED_SENDER}) reached the downstream`);
  const client = /\[(IPv6:)?([^\]]+)\]/.exec(rec?.[1] ?? '')?.[2];
  const foreign = m.to.filter((r) => !isLocalRecipient(r));
  if (foreign.length && client !== RELAY_CLIENT)
    problem(`${tid}: relayed to ${foreign.join(', ')} for client ${client} outside RelayNet`);
}

function checkSinkCommand(t: Tally, c: string): void {
  // what asmtpd's relay may send: one command per line, printable, no control characters
  // eslint-disable-next-line no-control-regex
  const ok = /^(EHLO \S+|MAIL FROM:<[^\x00-\x1f]*>( \S+)*|RCPT TO:<[^\x00-\x1f]*>( \S+)*|DATA|RSET|NOOP|QUIT)$/.test(c);
  if (!ok && t.sinkProblems.length < 100)
    t.sinkProblems.push(`unexpected command at the downstream: ${JSON.stringify(c.slice(0, 200))}`);
  if (c.includes(SMUGGLED_SENDER) && t.sinkProblems.length < 100)
    t.sinkProblems.push(`injected command at the downstream: ${JSON.stringify(c)}`);
}

// ── Memory ────────────────────────────────────────────────────────────────────────────────────

export interface MemorySample {
  /** VmRSS of /proc/PID/status, bytes, after the forced GC */
  rss: number;
  heapUsed: number;
  /** V8's heap reservation: what the GC keeps from the system after a peak */
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  fds: number;
  /** VmRSS before malloc_trim(0) (equal to rss when gdb is not there) */
  rssUntrimmed: number;
  /** whether glibc's free memory was given back (malloc_trim through gdb) before rss was read */
  trimmed: boolean;
  /** VmRSS split by mapping (/proc/PID/smaps): glibc's main arena, other anonymous memory (V8's heap, thread arenas), files (node's code) */
  rssBrk: number;
  rssAnon: number;
  rssFile: number;
}

function rssByMapping(pid: number): { rssBrk: number; rssAnon: number; rssFile: number } {
  const out = { rssBrk: 0, rssAnon: 0, rssFile: 0 };
  let kind: keyof typeof out = 'rssAnon';
  for (const l of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) {
      const name = m[1] ?? '';
      kind = name === '[heap]' ? 'rssBrk' : name.startsWith('/') ? 'rssFile' : 'rssAnon';
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(l);
    if (r) out[kind] += Number(r[1]) * 1024;
  }
  return out;
}

/** Wait until the daemon has no session left, force two GCs, read VmRSS and the open fds. */
export async function daemonMemory(t: FuzzTarget, settleMs = 500): Promise<MemorySample> {
  const pid = t.daemon.proc.pid!;
  await idle(t, 30_000);
  await new Promise((r) => setTimeout(r, settleMs));
  const before = t.daemon.logs.length;
  t.daemon.proc.kill('SIGUSR2');
  const deadline = Date.now() + 10_000;
  let rep: LogLine | undefined;
  while (!rep && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    rep = t.daemon.logs.slice(before).find((l) => l.event === 'fuzz.memory' && l.pid === pid);
  }
  if (!rep) throw new Error('the daemon did not report its memory (GC preload not loaded?)');
  await new Promise((r) => setTimeout(r, 300));
  const vmRss = (): number =>
    1024 * Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  const untrimmed = vmRss();
  const trimmed = mallocTrim(pid);
  return {
    rss: trimmed ? vmRss() : untrimmed,
    rssUntrimmed: untrimmed,
    trimmed,
    heapUsed: Number(rep.heapUsed),
    heapTotal: Number(rep.heapTotal),
    external: Number(rep.external),
    arrayBuffers: Number(rep.arrayBuffers),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    ...rssByMapping(pid),
  };
}

/**
 * glibc keeps the memory freed inside its main arena (the daemon's many short connections leave
 * it fragmented: after 15,000 sessions, 34 MB of arena for 4.5 MB in use): malloc_trim(0), called
 * in the daemon through gdb, gives it back, so VmRSS shows what is in use. false when gdb is missing.
 */
function mallocTrim(pid: number): boolean {
  try {
    execFileSync('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', 'call (int)malloc_trim(0)'], {
      stdio: 'ignore',
      timeout: 30_000,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Until every session.connect has its session.end and every message at the downstream has its
 * data.decision line (a delivery can finish after its client has gone).
 */
export async function idle(t: FuzzTarget, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    drain(t);
    const open = (t.tally.events['session.connect'] ?? 0) - (t.tally.events['session.end'] ?? 0);
    const undecided = [...t.tally.deliveredTids.keys()].some(
      (tid) => !t.tally.acceptedTids.has(tid) && !t.tally.refusedTids.has(tid),
    );
    if (open <= 0 && !undecided) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ── Runs ──────────────────────────────────────────────────────────────────────────────────────

export interface FuzzStats {
  seed: number;
  sessions: number;
  ms: number;
  kinds: Record<string, number>;
  /** replies by first digit, and 421s separately */
  replies: Record<string, number>;
  closedByServer: number;
  gaveUp: number;
  connectErrors: number;
  suspicious: Array<{ index: number; kind: string; reply: string }>;
  /** 4xx replies other than 421, counted by text (queue ids and numbers masked) */
  transient: Record<string, number>;
  slowest: { index: number; kind: string; ms: number };
}

export interface RunOptions {
  seed: number;
  sessions: number;
  /** first session index (a warm-up and the run use disjoint ranges of one seed) */
  first?: number;
  concurrency?: number;
  driver?: DriverOptions;
  onProgress?: (done: number, stats: FuzzStats) => void;
  progressEvery?: number;
  /** only sessions of this kind (e.g. a burst of `huge` ones) */
  only?: SessionKind;
}

export async function runFuzz(t: FuzzTarget, o: RunOptions): Promise<FuzzStats> {
  const stats: FuzzStats = {
    seed: o.seed,
    sessions: 0,
    ms: 0,
    kinds: {},
    replies: {},
    closedByServer: 0,
    gaveUp: 0,
    connectErrors: 0,
    suspicious: [],
    transient: {},
    slowest: { index: -1, kind: '', ms: 0 },
  };
  const started = Date.now();
  const first = o.first ?? 0;
  let next = first;
  const end = first + o.sessions;
  const every = o.progressEvery ?? 1000;
  const worker = async (): Promise<void> => {
    while (next < end) {
      const i = next++;
      const s = generateSession(o.seed, i, o.only);
      const r = await runSession(t.daemon.port, s, o.driver);
      stats.sessions++;
      stats.kinds[s.kind] = (stats.kinds[s.kind] ?? 0) + 1;
      for (const c of r.codes) {
        const k = c === 421 ? '421' : `${String(c)[0]}xx`;
        stats.replies[k] = (stats.replies[k] ?? 0) + 1;
      }
      if (r.closedByServer) stats.closedByServer++;
      if (r.gaveUp) stats.gaveUp++;
      if (r.connectError) stats.connectErrors++;
      for (const x of r.transient) {
        const k = x.replace(/\d{2,}/g, 'N');
        stats.transient[k] = (stats.transient[k] ?? 0) + 1;
      }
      for (const x of r.suspicious)
        if (stats.suspicious.length < 50) stats.suspicious.push({ index: i, kind: s.kind, reply: x });
      if (r.ms > stats.slowest.ms) stats.slowest = { index: i, kind: s.kind, ms: r.ms };
      if (stats.sessions % every === 0) {
        drain(t);
        o.onProgress?.(stats.sessions, stats);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 50 }, worker));
  stats.ms = Date.now() - started;
  drain(t);
  return stats;
}

export interface WarmUp {
  /** one sample after each part of the warm-up */
  samples: Array<MemorySample & { sessions: number }>;
  /** the sample with the highest RSS: the figure the run is compared with */
  before: MemorySample;
}

/**
 * Warm the daemon up with `sessions` sessions (indexes from 2^31, so they never repeat the run's)
 * in `parts` parts, measuring after each. "before" is the highest sample: the daemon still grows a
 * little after start (compiled code), and V8's heap reservation after a GC is not always the same.
 */
export async function warmUp(
  t: FuzzTarget,
  o: { seed: number; sessions: number; parts?: number; concurrency?: number; driver?: DriverOptions },
): Promise<WarmUp> {
  const parts = o.parts ?? 3;
  const per = Math.ceil(o.sessions / parts);
  const samples: WarmUp['samples'] = [];
  for (let k = 0; k < parts; k++) {
    await runFuzz(t, {
      seed: o.seed,
      first: 2 ** 31 + k * per,
      sessions: per,
      concurrency: o.concurrency ?? 100,
      ...(o.driver ? { driver: o.driver } : {}),
    });
    samples.push({ sessions: (k + 1) * per, ...(await daemonMemory(t)) });
  }
  const before = samples.reduce((a, b) => (b.rss > a.rss ? b : a));
  return { samples, before };
}

/** A normal transaction still works: EHLO, MAIL, RCPT alice@local.test, DATA → 250, and it arrives. */
export async function normalTransaction(t: FuzzTarget): Promise<string | null> {
  const marker = `fuzz-final-${Date.now()}`;
  const c = await SmtpClient.connect(t.daemon.port);
  try {
    const g = await c.greeting();
    if (g.code !== 220) return `greeting: ${g.last}`;
    const r = await c.send(
      'a@remote.example',
      ['alice@local.test'],
      `Subject: ${marker}\r\n\r\nafter the fuzz run\r\n`,
    );
    if (r.code !== 250) return `final transaction: ${r.last}`;
    await c.cmd('QUIT');
  } finally {
    c.close();
  }
  const seen = t.sink.messages.some((m) => m.data.includes(marker));
  return seen ? null : 'the final message did not reach the downstream';
}

/** Every invariant after a run (call after idle()); an empty list means all is well. */
export function checkTarget(t: FuzzTarget): string[] {
  drain(t);
  const problems: string[] = [];
  if (t.daemon.proc.exitCode !== null || t.daemon.proc.signalCode !== null) {
    problems.push(`the daemon exited (${t.daemon.proc.exitCode ?? t.daemon.proc.signalCode})`);
  }
  for (const [key, e] of t.tally.errors)
    problems.push(`daemon logged ${e.count}× ${key} — e.g. ${JSON.stringify(e.example).slice(0, 600)}`);
  for (const l of t.tally.nonJsonStderr) problems.push(`daemon stderr: ${l.slice(0, 300)}`);
  problems.push(...t.tally.sinkProblems);
  for (const [tid, n] of t.tally.deliveredTids) {
    if (n > 1) problems.push(`${tid} reached the downstream ${n} times`);
    if (!t.tally.acceptedTids.has(tid)) {
      const refused = t.tally.refusedTids.get(tid);
      problems.push(
        `${tid} reached the downstream without a 250 data.decision${refused ? ` (the client got: ${refused})` : ' (none logged)'}`,
      );
    }
  }
  for (const tid of t.tally.acceptedTids) {
    if (!t.tally.deliveredTids.has(tid)) problems.push(`${tid} was answered 250 but is not at the downstream`);
  }
  return problems;
}
