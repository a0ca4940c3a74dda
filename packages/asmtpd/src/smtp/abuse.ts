/**
 * abuse.ts — protocol abuse on one connection (spec §4 "pipelining abuse" and "HTTP proxy abuse"):
 * the facts behind CLIENT_PIPELINING (`pre-greeting`, `unadvertised`) and CLIENT_POST.
 *
 *   const d = new AbuseDetector((kind, detail) => …)   one per connection, fed by boundary.ts:
 *   d.input(chunk, inMessage) bytes reached the command parser (before it reads them)
 *   d.dispatched(verb)        a command line is about to be handled
 *   d.replied(code, lines)    a reply was written (the banner, or the answer to a command)
 *   d.messageEnded(trailing)  the end-of-data dot was read, `trailing` bytes followed it in its segment
 *   d.post(line)              an HTTP request line came as a command (see isHttpRequestLine)
 * Each kind is reported once per connection.
 *
 * Rules (a server cannot see when a reply reaches the client, only what arrived before it wrote
 * the reply; so a client that waits for every reply is never flagged, and some pipelining that
 * races our replies goes unseen — no false positives, possible misses):
 *  - pre-greeting: any byte before the banner was written. Needs GreetingDelay > 0: without a
 *    delay the banner is written as soon as the connection is accepted, before any input is read.
 *  - unadvertised: input that could not have waited for our reply, while pipelining is not offered:
 *    bytes arriving while a command (or the end of a message) has not been answered yet, or more
 *    bytes after a complete line in the same segment (unless that line is an HTTP request: its
 *    header lines come with it, that is `post`), or bytes after the end-of-data dot in its segment.
 *    Pipelining is offered (RFC 2920) from the moment the EHLO reply listing PIPELINING is written
 *    until the next HELO, EHLO or STARTTLS; so a client that pipelines its EHLO itself, or anything
 *    after HELO, is flagged; MAIL/RCPT/DATA groups after that EHLO reply are not.
 *    Message content (between 354 and the dot) is never looked at.
 *  - post: the command line starts with POST, GET, CONNECT or HEAD and a space (any case), or is
 *    an HTTP/1.x request line of another method (PUT, OPTIONS…).
 */

export type AbuseKind = 'pre-greeting' | 'unadvertised' | 'post';

const HTTP_VERB = /^(?:POST|GET|CONNECT|HEAD) /i;
const HTTP_REQUEST_LINE = /^(?:OPTIONS|PUT|DELETE|TRACE|PATCH) \S+ HTTP\/\d(?:\.\d)?$/i;

/** A command line that is an HTTP request (an open-proxy probe, or a browser sent to port 25). */
export function isHttpRequestLine(line: string): boolean {
  return HTTP_VERB.test(line) || HTTP_REQUEST_LINE.test(line);
}

/** The first word of a command line, for log lines: letters only, upper case, at most 16. */
export function commandVerb(line: string): string {
  const m = /^[A-Za-z]{1,16}/.exec(line.trimStart());
  return m ? m[0].toUpperCase() : '?';
}

/** Printable sample of client bytes for a log line (JSON-escaped by the logger). */
function sample(bytes: Buffer, max = 64): string {
  const text = bytes.subarray(0, max).toString('latin1').replace(/\r\n/g, '\\r\\n');
  return bytes.length > max ? text + '...' : text;
}

export class AbuseDetector {
  /** the banner (or a refusal) was written: from now on input may come */
  private greeted = false;
  /** the verb of the command whose reply is not written yet ('.' for the end of a message) */
  private awaiting: string | null = null;
  /** the last EHLO reply offered PIPELINING, and no HELO/EHLO/STARTTLS came since */
  private offered = false;
  private readonly seen = new Set<AbuseKind>();

  constructor(private readonly report: (kind: AbuseKind, detail: Record<string, unknown>) => void) {}

  /** `inMessage`: the parser is inside a message (after 354, before the dot) */
  input(chunk: Buffer, inMessage: boolean): void {
    if (chunk.length === 0) return;
    if (!this.greeted) {
      this.flag('pre-greeting', { bytes: chunk.length, sample: sample(chunk) });
      return;
    }
    if (this.offered || inMessage) return;
    if (this.awaiting !== null) {
      this.flag('unadvertised', { after: this.awaiting, sample: sample(chunk) });
      return;
    }
    const lf = chunk.indexOf(0x0a);
    if (lf >= 0 && lf < chunk.length - 1) {
      const first = chunk.subarray(0, lf).toString('latin1').replace(/\r$/, '');
      // an HTTP request comes with its header lines by nature: that is `post`, not pipelining
      if (isHttpRequestLine(first)) return;
      this.flag('unadvertised', { after: commandVerb(first), sample: sample(chunk) });
    }
  }

  dispatched(verb: string): void {
    this.awaiting = verb;
    if (verb === 'HELO' || verb === 'EHLO' || verb === 'LHLO' || verb === 'STARTTLS') this.offered = false;
  }

  replied(code: number, lines: readonly string[]): void {
    this.greeted = true;
    if (this.awaiting === 'EHLO' && code === 250 && lines.slice(1).some((l) => /^PIPELINING\b/i.test(l)))
      this.offered = true;
    this.awaiting = null;
  }

  messageEnded(trailing: Buffer): void {
    this.awaiting = '.';
    if (trailing.length > 0 && !this.offered) this.flag('unadvertised', { after: '.', sample: sample(trailing) });
  }

  post(line: string): void {
    this.flag('post', { command: line.length > 200 ? line.slice(0, 200) + '...' : line });
  }

  private flag(kind: AbuseKind, detail: Record<string, unknown>): void {
    if (this.seen.has(kind)) return;
    this.seen.add(kind);
    this.report(kind, detail);
  }
}
