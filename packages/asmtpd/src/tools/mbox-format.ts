/**
 * mbox-format.ts — the bytes of mail files, as deliver(1) writes and mailexec(1) reads them: the
 * mbox envelope line, `>From ` quoting, the Return-Path field. Pure; Buffers in and out (a message
 * is bytes, not text: nothing is decoded or re-encoded).
 *
 *   envelopeLine(sender, date)    "From SENDER DATE\n" (RFC 4155: DATE in asctime form, local
 *                                  time; SENDER `MAILER-DAEMON` for the null sender or none known,
 *                                  spaces and control characters as `_`)
 *   splitEnvelope(message)        {envelope, rest}: a leading "From " line (an mbox envelope, never a
 *                                  header field) apart from the message
 *   envelopeSender(line)          the sender an envelope line names ('' for MAILER-DAEMON, the null
 *                                  sender; null when it names none)
 *   returnPathOf(message)         the address of the message's first Return-Path field, or null
 *   hasField(message, name)       the header has a field of that name
 *   returnPathField(sender)       "Return-Path: <SENDER>\n" (control characters as `?`)
 *   stripLeadingFields(m, name)   the message without the fields of that name at its very top
 *   quoteFromLines(body)          ">" before every line matching /^>*From / (mboxrd)
 *   MboxSplitter                  an mbox file, chunk by chunk, to its messages: a message starts
 *       at a "From " line at the start of the file or after an empty line; the empty line before
 *       it belongs to the file format and is dropped; one ">" is taken from each /^>+From / line
 */

const LF = 0x0a;
const FROM_ = Buffer.from('From ', 'latin1');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad2 = (n: number) => String(n).padStart(2, '0');

/** asctime(3) of the local time: "Thu Nov  4 18:22:48 1986". */
export function asctime(d: Date): string {
  const day = String(d.getDate()).padStart(2, ' ');
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${day} ${time} ${d.getFullYear()}`;
}

/** The sender as an envelope line names it. */
export function envelopeName(sender: string | null): string {
  if (sender === null || sender === '') return 'MAILER-DAEMON';
  return sender.replace(/[\x00-\x20\x7f]/g, '_');
}

export function envelopeLine(sender: string | null, date: Date): Buffer {
  return Buffer.from(`From ${envelopeName(sender)} ${asctime(date)}\n`, 'latin1');
}

export function splitEnvelope(message: Buffer): { envelope: Buffer | null; rest: Buffer } {
  if (!startsWith(message, 0, FROM_)) return { envelope: null, rest: message };
  const eol = message.indexOf(LF);
  const end = eol < 0 ? message.length : eol + 1;
  return { envelope: message.subarray(0, end), rest: message.subarray(end) };
}

export function envelopeSender(line: Buffer): string | null {
  const name = /^From (\S*)/.exec(line.toString('latin1'))?.[1] ?? '';
  if (name === '') return null;
  return name === 'MAILER-DAEMON' ? '' : name;
}

/** The header block of a message (up to its first empty line), as latin1 text. */
function headerText(message: Buffer): string {
  let end = message.length;
  for (let i = message.indexOf(LF); i >= 0; i = message.indexOf(LF, i + 1)) {
    const next = message[i + 1];
    if (next === LF || (next === 0x0d && message[i + 2] === LF)) {
      end = i + 1;
      break;
    }
  }
  if (message[0] === LF || (message[0] === 0x0d && message[1] === LF)) end = 0;
  return message.toString('latin1', 0, end);
}

/** The unfolded value of the first field named `name`, or null. */
function fieldValue(message: Buffer, name: string): string | null {
  const re = new RegExp(`(?:^|\\n)${name}:([^\\n]*(?:\\n[ \\t][^\\n]*)*)`, 'i');
  const m = re.exec(headerText(message));
  return m?.[1] === undefined ? null : m[1].replace(/\r?\n/g, '').trim();
}

export function hasField(message: Buffer, name: string): boolean {
  return fieldValue(message, name) !== null;
}

export function returnPathOf(message: Buffer): string | null {
  const value = fieldValue(message, 'Return-Path');
  if (value === null) return null;
  return /<([^>]*)>/.exec(value)?.[1] ?? value;
}

export function returnPathField(sender: string): Buffer {
  return Buffer.from(`Return-Path: <${sender.replace(/[\x00-\x1f\x7f]/g, '?')}>\n`, 'latin1');
}

export function stripLeadingFields(message: Buffer, name: string): Buffer {
  const prefix = Buffer.from(`${name}:`, 'latin1');
  let at = 0;
  while (startsWithIgnoreCase(message, at, prefix)) {
    // the field and its continuation lines
    do {
      const eol = message.indexOf(LF, at);
      at = eol < 0 ? message.length : eol + 1;
    } while (message[at] === 0x20 || message[at] === 0x09);
  }
  return message.subarray(at);
}

function startsWith(buf: Buffer, at: number, prefix: Buffer): boolean {
  return buf.length - at >= prefix.length && buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

function startsWithIgnoreCase(buf: Buffer, at: number, prefix: Buffer): boolean {
  return (
    buf.length - at >= prefix.length &&
    buf.toString('latin1', at, at + prefix.length).toLowerCase() === prefix.toString('latin1').toLowerCase()
  );
}

/** Does the line starting at `at` match /^>*From / (quote: at least one '>')? */
function isFromLine(buf: Buffer, at: number, quoted: boolean): boolean {
  let i = at;
  while (buf[i] === 0x3e) i++;
  if (quoted && i === at) return false;
  return startsWith(buf, i, FROM_);
}

export function quoteFromLines(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let last = 0;
  for (let at = 0; at < body.length; ) {
    if (isFromLine(body, at, false)) {
      parts.push(body.subarray(last, at), Buffer.from('>'));
      last = at;
    }
    const eol = body.indexOf(LF, at);
    if (eol < 0) break;
    at = eol + 1;
  }
  if (last === 0 && parts.length === 0) return body;
  parts.push(body.subarray(last));
  return Buffer.concat(parts);
}

export interface MboxMessage {
  /** the envelope line, with its newline */
  envelope: Buffer;
  /** the message, unquoted, without the empty line that separated it from the next */
  content: Buffer;
}

export class MboxSplitter {
  private partial: Buffer = Buffer.alloc(0);
  private envelope: Buffer | null = null;
  private lines: Buffer[] = [];
  private lastBlank = true;

  /** The messages completed by this chunk. Throws if the file does not start with a "From " line. */
  push(chunk: Buffer): MboxMessage[] {
    const data = this.partial.length === 0 ? chunk : Buffer.concat([this.partial, chunk]);
    const out: MboxMessage[] = [];
    let at = 0;
    for (let eol = data.indexOf(LF); eol >= 0; eol = data.indexOf(LF, at)) {
      this.line(data.subarray(at, eol + 1), out);
      at = eol + 1;
    }
    this.partial = Buffer.from(data.subarray(at));
    return out;
  }

  end(): MboxMessage[] {
    const out: MboxMessage[] = [];
    if (this.partial.length > 0) this.line(this.partial, out);
    this.partial = Buffer.alloc(0);
    this.finish(out);
    return out;
  }

  private line(line: Buffer, out: MboxMessage[]): void {
    const blank = line.length === 1 || (line.length === 2 && line[0] === 0x0d);
    if (this.lastBlank && startsWith(line, 0, FROM_)) {
      this.finish(out);
      this.envelope = Buffer.from(line);
    } else if (this.envelope === null) {
      if (!blank) throw new Error('not an mbox file: it does not start with a "From " line');
    } else {
      this.lines.push(isFromLine(line, 0, true) ? Buffer.from(line.subarray(1)) : Buffer.from(line));
    }
    this.lastBlank = blank;
  }

  private finish(out: MboxMessage[]): void {
    if (this.envelope === null) return;
    const lastLine = this.lines.at(-1);
    if (lastLine !== undefined && (lastLine.length === 1 || (lastLine.length === 2 && lastLine[0] === 0x0d)))
      this.lines.pop();
    out.push({ envelope: this.envelope, content: Buffer.concat(this.lines) });
    this.envelope = null;
    this.lines = [];
  }
}
