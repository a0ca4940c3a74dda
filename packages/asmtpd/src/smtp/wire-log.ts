/**
 * wire-log.ts — the --verbose transcript: one session.smtp line per command and per reply, taken
 * from smtp-server's own logger hooks (its `logger` option), which see the text exactly as it went
 * over the wire ("221 2.0.0 Bye" with the enhanced code it adds) and commands decoded from UTF-8
 * once. AUTH credentials are redacted by smtp-server before they reach a logger.
 *
 *   wireLogger(sessionLog) → a bunyan-style logger for SMTPServer's `logger` option
 */
import type { Logger } from '../log/logger.js';

const MAX_TEXT = 600;

type Entry = { tnx?: string; cid?: string };
type LogFn = (entry: Entry, message?: string, ...args: unknown[]) => void;

function cut(text: string): string {
  return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + '...' : text;
}

export function wireLogger(sessionLog: (cid: string) => Logger | null): Record<string, LogFn> {
  const quiet: LogFn = () => {};
  const debug: LogFn = (entry, message, ...args) => {
    if (!entry || typeof entry.cid !== 'string') return;
    const text = args.length > 0 ? String(args[args.length - 1]) : '';
    if (entry.tnx === 'send' && message === 'S:') sessionLog(entry.cid)?.debug('session.smtp', { reply: cut(text) });
    else if (entry.tnx === 'command' && message === 'C:')
      sessionLog(entry.cid)?.debug('session.smtp', { command: cut(text) });
  };
  return { trace: quiet, debug, info: quiet, warn: quiet, error: quiet, fatal: quiet };
}
