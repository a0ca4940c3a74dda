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
  'session.facts': 'the connect-time facts are in (ptr, name, dnsfail, rbl_score, rbl_listed, ms)',
  'rbl.error': 'a DNSBL lookup failed, was refused (127.255.255.x) or gave an answer outside 127/8 (zone, kind, detail): not a listing',
  'mail.facts': 'the MAIL-time facts are in (spf, spf_helo, bounce, ms)',
  'probe.done': 'a bounce probe of the sender finished (sender, result: accepted, refused or tempfail, reply, scope: address or domain, cached, ms, mx, ip); warn for a temporary failure',
  'store.error': 'the state database failed (op, error); the caller went on without it',
  'mail.decision': 'MAIL FROM answered (from, reply)',
  'rcpt.decision': 'RCPT TO answered (from, to, reply)',
  'data.decision': 'end of DATA answered (reply, size, recipients)',
  'data.rejected': 'DATA refused while streaming (size, bare CR/LF, timeout)',
  'relay.done': 'the downstream accepted the message (downstream id, ms)',
  'relay.failed': 'the downstream refused or could not be reached (reply, ms); at debug level with stale: true when a stale pooled connection is retried',
  'queue.held': 'a message was written to the hold queue (ok: true, path, recipients, reason) or could not be (ok: false, level error)',
  'policy.failed': 'a policy script failed, timed out or was refused (user, script, reason): the recipient got 451 4.3.0',
  'bodytest.done': 'a body test ran after DATA (user, argv, verdict: accept, discard or refuse with the reply)',
  'data.discarded': 'a body test exited 99: the message was answered 250 and not delivered (size, recipients)',
  'runner.exit': 'the script runner process ended; the daemon stops (it cannot run scripts any more)',
  'daemon.privileges': 'the SMTP process gave up root (user, uid, gid) or kept the identity of the invoking user',
  'runner.log': 'a line the script runner wrote to its stderr',
  'config.error': 'a configuration error (file:line)',
} as const;

export type LogEvent = keyof typeof LOG_EVENTS;
