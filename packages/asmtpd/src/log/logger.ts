/**
 * Logging: one JSON object per line with ts, level, event, sid[, tid]; event names come from
 * events.ts. Only this module imports pino. Client-supplied strings are passed as values
 * (JSON-escaped by pino), never formatted into the message.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import type { LogEvent } from './events.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: Level, event: LogEvent, fields?: Record<string, unknown>): void;
  info(event: LogEvent, fields?: Record<string, unknown>): void;
  warn(event: LogEvent, fields?: Record<string, unknown>): void;
  error(event: LogEvent, fields?: Record<string, unknown>): void;
  debug(event: LogEvent, fields?: Record<string, unknown>): void;
  /** a logger whose lines all carry these fields (sid, tid…) */
  child(bindings: Record<string, unknown>): Logger;
  setLevel(level: Level): void;
  /** write out buffered lines now (before the process exits) */
  flush(): void;
}

class PinoAdapter implements Logger {
  constructor(
    private readonly p: PinoLogger,
    private readonly flushNow: () => void = () => {},
  ) {}
  log(level: Level, event: LogEvent, fields: Record<string, unknown> = {}): void {
    this.p[level]({ event, ...fields });
  }
  info(event: LogEvent, fields?: Record<string, unknown>): void {
    this.log('info', event, fields);
  }
  warn(event: LogEvent, fields?: Record<string, unknown>): void {
    this.log('warn', event, fields);
  }
  error(event: LogEvent, fields?: Record<string, unknown>): void {
    this.log('error', event, fields);
  }
  debug(event: LogEvent, fields?: Record<string, unknown>): void {
    this.log('debug', event, fields);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new PinoAdapter(this.p.child(bindings), this.flushNow);
  }
  setLevel(level: Level): void {
    this.p.level = level;
  }
  flush(): void {
    this.flushNow();
  }
}

/**
 * A logger writing JSON lines to a file descriptor (2 = stderr). Lines are gathered up to 4 KiB and
 * written at least every FLUSH_INTERVAL_MS (unless lineAtATime): one write per batch instead of one per line (several
 * lines per message on port 25), while a line never waits longer than that. flush() before exit.
 */
export const FLUSH_INTERVAL_MS = 200;

export function createLogger(opts: { level?: Level; fd?: number; lineAtATime?: boolean } = {}): Logger {
  // lineAtATime (Workers N: several processes write to one stderr, often a pipe): one write(2) per
  // line, so that lines of different processes never mix (a write of up to PIPE_BUF bytes is atomic
  // on a pipe; a batch of several KiB is not once the pipe is full)
  const dest = opts.lineAtATime
    ? pino.destination({ fd: opts.fd ?? 2, sync: true, minLength: 0 })
    : pino.destination({ fd: opts.fd ?? 2, sync: false, minLength: 4096, periodicFlush: FLUSH_INTERVAL_MS });
  const p = pino(
    {
      level: opts.level ?? 'info',
      base: undefined,
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'msg',
    },
    dest,
  );
  return new PinoAdapter(p, () => {
    try {
      dest.flushSync();
    } catch {
      /* nothing buffered, or the descriptor is gone */
    }
  });
}

/** A logger that drops everything (unit tests, diagnostic modes). */
export function nullLogger(): Logger {
  const l: Logger = {
    log() {},
    info() {},
    warn() {},
    error() {},
    debug() {},
    child() {
      return l;
    },
    setLevel() {},
    flush() {},
  };
  return l;
}
