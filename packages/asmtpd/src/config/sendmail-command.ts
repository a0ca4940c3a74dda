/**
 * sendmail-command.ts — the Sendmail directive: the command line as written → the argv template
 * the relay runs (relay/sendmail-relay.ts puts the sender for %s and appends the recipients).
 *
 *   parseSendmailCommand(words, find?) -> Parsed<string[]>
 *   describeSendmailCommand(template) -> string   what --check prints: the argv with SENDER and RECIPIENT...
 *   findProgram(name, dirs?) -> absolute path | null
 *   PROGRAM_SEARCH_PATH
 *
 * Two ways to write it:
 *   - Mail Avenger's: a program and its options, no %s (`Sendmail sendmail -oi`). asmtpd adds -oi
 *     when neither -oi nor -i is there (without it a line holding a single dot ends the message),
 *     then `-f SENDER --`: the envelope sender the way every sendmail takes it, and `--` before the
 *     recipients (Postfix's, Exim's and Sendmail's sendmail end their options there), so mail never
 *     goes out with the sender of the account asmtpd runs as. A trailing `--` is moved after -f.
 *   - asmtpd's own: %s where the sender goes; used as written (a warning without -oi or -i).
 * The program is an absolute path, or a name looked up in PROGRAM_SEARCH_PATH — a fixed list, not
 * the daemon's PATH: --check and the daemon find the same program, and a daemon started as root
 * never runs one from a directory its environment happened to name.
 * Refused: a relative path with a `/`, a name found nowhere, -t (recipients from the message's
 * headers: a Bcc: would be delivered), and without %s: -f or -r (the sender is the client's) and
 * words after `--`.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Parsed } from './values.js';

export const PROGRAM_SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export function findProgram(name: string, dirs: readonly string[] = PROGRAM_SEARCH_PATH): string | null {
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      if (statSync(path).isFile()) {
        accessSync(path, constants.X_OK);
        return path;
      }
    } catch {
      /* not here */
    }
  }
  return null;
}

const fail = (message: string): Parsed<string[]> => ({ kind: 'error', message });

export function parseSendmailCommand(
  words: readonly string[],
  find: (name: string) => string | null = (name) => findProgram(name),
): Parsed<string[]> {
  const [program, ...args] = words;
  if (program === undefined || program === '') return fail('expected a program and its options');
  let path = program;
  if (!program.startsWith('/')) {
    if (program.includes('/'))
      return fail('the program is an absolute path or a name looked up in ' + PROGRAM_SEARCH_PATH.join(':'));
    const found = find(program);
    if (found === null) return fail(`${program}: not found in ${PROGRAM_SEARCH_PATH.join(':')}`);
    path = found;
  }
  if (args.includes('-t')) return fail('-t would take the recipients from the message headers (a Bcc: gets delivered)');
  const hasDotOption = args.some((a) => a === '-oi' || a === '-i');
  if (words.some((w) => w.includes('%s'))) {
    const value = [path, ...args];
    return hasDotOption
      ? { kind: 'ok', value }
      : { kind: 'ok', value, warning: 'without -oi (or -i) a line holding a single dot ends the message' };
  }
  const end = args.indexOf('--');
  if (end >= 0 && end !== args.length - 1)
    return fail('words after "--" would be recipients; asmtpd appends the recipients itself');
  const options = end >= 0 ? args.slice(0, end) : args;
  const own = options.find((a) => /^-[fr]/.test(a));
  if (own !== undefined)
    return fail(`${own}: asmtpd passes the envelope sender itself (-f SENDER); to place it yourself, write -f %s`);
  return { kind: 'ok', value: [path, ...options, ...(hasDotOption ? [] : ['-oi']), '-f', '%s', '--'] };
}

/** `/usr/sbin/sendmail -oi -f SENDER -- RECIPIENT...`: the template as --check shows it. */
export function describeSendmailCommand(template: readonly string[]): string {
  const words = template
    .map((w) => w.replace(/%s/g, 'SENDER'))
    .map((w) => (/^[^\s"'\\]+$/.test(w) ? w : JSON.stringify(w)));
  return [...words, 'RECIPIENT...'].join(' ');
}
