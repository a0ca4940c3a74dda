/**
 * The catalogue of log events. Every log line's `event` is one of these; docs/logging.md lists
 * them with their fields (a test keeps the two in sync).
 */
export const LOG_EVENTS = {
  'daemon.start': 'the daemon is listening (addresses, port, pid, privileged or not)',
  'daemon.reload': 'SIGHUP: a new configuration was loaded',
  'daemon.reload_failed': 'SIGHUP: the new configuration was refused; the old one stays (errors)',
  'daemon.stop': 'SIGTERM/SIGINT: stopping (sessions still open)',
  'daemon.error': 'an unexpected error outside any session',
  'session.connect': 'a client connected (ip, port, local address)',
  'session.refused': 'a connection was refused before the banner (limit reached)',
  'session.smtp': 'one SMTP exchange (only with --verbose): command and reply',
  'session.helo': 'HELO/EHLO received (helo, proto)',
  'session.error': 'a session ended by an error (bug or socket error): 451 4.3.0',
  'session.end': 'the client disconnected (counts of messages, recipients, errors, duration)',
  'mail.decision': 'MAIL FROM answered (from, reply)',
  'rcpt.decision': 'RCPT TO answered (from, to, reply)',
  'data.decision': 'end of DATA answered (reply, size, recipients)',
  'data.rejected': 'DATA refused while streaming (size, bare CR/LF, timeout)',
  'relay.done': 'the downstream accepted the message (downstream id, ms)',
  'relay.failed': 'the downstream refused or could not be reached (reply, ms); at debug level with stale: true when a stale pooled connection is retried',
  'queue.held': 'a message was written to the hold queue (ok: true, path, recipients, reason) or could not be (ok: false, level error)',
  'config.error': 'a configuration error (file:line)',
} as const;

export type LogEvent = keyof typeof LOG_EVENTS;
