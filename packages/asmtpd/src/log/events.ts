/**
 * The catalogue of log events. Every log line's `event` is one of these; docs/logging.md lists
 * them with their fields (a test keeps the two in sync).
 */
export const LOG_EVENTS = {
  'daemon.start': 'the daemon is listening (addresses, port, pid, privileged or not, metrics: MetricsListen)',
  'daemon.reload': 'SIGHUP: a new configuration was loaded',
  'daemon.reload_failed': 'SIGHUP: the new configuration was refused; the old one stays (errors)',
  'daemon.stop': 'SIGTERM/SIGINT: stopping (sessions still open)',
  'daemon.error': 'an unexpected error outside any session',
  'worker.start':
    'Workers N: an SMTP worker process listens and serves (worker: its number, pid, uid, restarted: true when it replaces one that died)',
  'worker.exit':
    'error: Workers N: an SMTP worker process ended unexpectedly (worker, pid, code, signal, workers_left); another is started (restart_in_ms: 0, or 5000 after more than 5 restarts in a minute) while the others keep serving',
  'session.connect':
    'a client connected (ip, port, local address, relay_net; worker: its number with Workers N; behind a ProxyProtocol load balancer the client of its header, and proxy, proxy_port, proxy_version: the load balancer)',
  'session.refused': 'a connection was refused before the banner (limit reached)',
  'session.blocked':
    'a blocked client was answered at once and closed, before any fact (ip, net: the block, until, reply: 421 4.7.1 or 554 5.7.1 as BlockAtBanner says; at: banner), or its open session was cut at RCPT (at: rcpt, to)',
  'block.added':
    'warn: a network was blocked (net, ip: the client whose refusal crossed the line, unknown: the unknown recipients counted within the window, offences: 1 for a first block, duration_ms: BlockTime doubled per repeat up to BlockTimeMax, until)',
  'block.reload':
    'the in-memory blocklist was read again from the state database because it changed outside this process (asmtpd --blocklist add or del): blocks, generation',
  'session.proxy_refused':
    'warn: ProxyProtocol closed a connection for its PROXY header (peer, peer_port: the TCP peer; reason: no-header, invalid, timeout, closed (info) before any session, or not-listed: a header as the first bytes of a session, answered 421, with ip; detail)',
  'session.smtp': 'one SMTP exchange (only with --verbose): command and reply',
  'session.error':
    'a session ended by an error (a bug, or a socket error other than the client going away: ip, code, error); in a transaction the client gets 451 4.3.0',
  'session.reset':
    'info: the client went away in the middle of a transaction (ip, code: ECONNRESET, EPIPE, ETIMEDOUT…); nothing was acknowledged, so nothing is lost. Outside a transaction smtp-server drops these quietly',
  'session.end': 'the client disconnected (counts of messages, recipients, errors, duration)',
  'tls.started': 'a STARTTLS handshake finished (ip, version, cipher, bits); the session starts over in TLS',
  'tls.failed':
    'warn: a STARTTLS handshake failed (ip, code, reason: e.g. unsupported protocol for TLSv1.0/1.1, no shared cipher); the connection is closed',
  'tls.loaded':
    'SIGHUP: the TLS certificates were read again (certificates); new sessions get them, sessions in TLS keep theirs',
  'tls.error': 'the TLS certificates could not be read (error); STARTTLS is not offered until a SIGHUP reads them',
  'auth.decision':
    'AUTH answered (ip, user as the client gave it, method: PLAIN or LOGIN, result: ok, failed with reason unknown-user or wrong-password and delay_ms, limit (warn: 421 4.7.0, the connection closed) or error; failures on the connection, ip_failures in the window; reply, ms). Never the password',
  'session.abuse':
    'protocol abuse, once per kind (kind: pre-greeting with bytes and sample, unadvertised with after (the unanswered command, . for a message) and sample, post with command)',
  'session.facts': 'the connect-time facts are in (ptr, name, dnsfail, ptr_invalid, rbl_score, rbl_listed, ms)',
  'rbl.error':
    'a DNSBL lookup failed, was refused (127.255.255.x) or gave an answer outside 127/8 (zone, kind: lookup, refused or ignored, detail; for refused: reason and hint, e.g. a public resolver or over quota): not a listing',
  'mail.facts': 'the MAIL-time facts are in (spf, spf_problem, spf_helo, bounce, ms)',
  'probe.done':
    'a bounce probe of the sender finished (sender, result: accepted, refused or tempfail, reply, scope: address or domain, cached, ms, mx, ip); warn for a temporary failure',
  'store.error': 'the state database failed (op, error); the caller went on without it',
  'mail.decision': 'MAIL FROM answered (from, reply)',
  'rcpt.decision':
    'RCPT TO answered (from, to, reply; scripts: each run with user, uid, script, outcome, ms, detail, and stderr, the first 300 characters the script wrote there; downstream: accepted, refused, unreachable, mail-refused, busy or unverified when the downstream was asked or not, with its detail for our own failures; verify: the RCPT_VERIFY of a RelayDomain recipient, with backend, verify_detail when no backend could be asked, shared when it waited for the same question)',
  'rcpt.unknown':
    'a recipient refused as unknown (ip, to, source: local (no such account or alias), backend (a RelayDomain backend or its cached 5xx) or script (a reject with 5.1.1), reply); also one row in the state database table unknown_rcpt (ip, address, at, net) — the input of dictionary-attack blocking (BlockUnknownRcpts)',
  'rcpt.verify_failed':
    'warn: no backend of a RelayDomain could be asked (to, detail: each backend and why, result: tempfail (451 4.4.1) or unverified (accepted, RcptVerifyTempfail no))',
  'data.decision': 'end of DATA answered (reply, size, recipients)',
  'data.rejected': 'DATA refused while streaming (size, bare CR/LF, timeout)',
  'dsn.sent':
    'a DSN (RFC 3464) for recipients the downstream refused after the client got 250 (id, dsn_id, to, recipients, result: delivered, held, failed, or none for a null sender)',
  'data.unanswered':
    "warn: the client was gone (socket closed or reset) when the downstream's verdict on the final dot came: the message was delivered but the client never heard it and may send it again (reply, count: how many since start)",
  'data.abandoned':
    "the client went away after its final dot and before the downstream's final dot: the downstream transaction was dropped (nothing delivered, nothing acknowledged)",
  'session.half_closed':
    'the client shut down its sending side (TCP half-close); what it sent is still answered, then the connection is closed (ip, in_transaction); not logged after our 221 or 421',
  'relay.capabilities':
    "the downstream's SMTPUTF8, 8BITMIME and SIZE as learned from its EHLO/LHLO changed; EHLO advertises them from now on (smtputf8, eightbitmime, size)",
  'relay.done': 'the downstream accepted the message (downstream id, ms)',
  'relay.failed':
    'the downstream refused or could not be reached (reply, ms, detail: the address of the downstream and the cause, which the client does not see); at debug level with stale: true when a stale pooled connection is retried',
  'queue.held':
    'a message was written to the hold queue (ok: true, path, recipients, reason) or could not be (ok: false, level error)',
  'policy.failed':
    'a policy script failed, timed out or was refused (user, script, reason): the recipient got 451 4.3.0',
  'bodytest.done': 'a body test ran after DATA (user, argv, verdict: accept, discard or refuse with the reply)',
  'data.discarded': 'a body test exited 99: the message was answered 250 and not delivered (size, recipients)',
  'runner.exit': 'the script runner process ended; the daemon stops (it cannot run scripts any more)',
  'daemon.privileges':
    'the SMTP process gave up root (user, uid, gid, avenger_user, netfacts_user) or kept the identity of the invoking user',
  'daemon.account_created':
    'a default-named service account (DaemonUser, AvengerUser or NetFactsUser) was missing and was created as a system account (user)',
  'runner.log': 'a line the script runner wrote to its stderr',
  'runner.reload':
    'after SIGHUP the runner re-read the configuration itself (changes, need_restart); error level when it refused the new one (error)',
  'netfacts.start':
    'the network facts process (SYN capture, NetPath; keeps CAP_NET_RAW) started (pid, syn_fp, net_path, capture: on, off or why not, ports); warn when SynFP yes could not capture',
  'netfacts.off':
    'SynFP/NetPath are off: no CAP_NET_RAW, or the network facts process could not start (reason, syn_fp, net_path); info when SynFP is automatic, warn when SynFP yes or NetPath yes asked for them',
  'netfacts.capture':
    'SYN capture was turned on or off (SIGHUP changed SynFP), or failed or ended (capture: the reason; warn)',
  'netfacts.exit':
    'the network facts process ended unexpectedly (pid, code, signal): SYN fingerprints and routes are off; the daemon keeps serving',
  'netfacts.log': 'a line the network facts process wrote to its stderr, or a protocol problem with it',
  'synfp.db_error':
    'a SynFPDB file could not be read (no OS guesses from it; none at all when no file can be) or has a bad line, which is skipped (file, line, error)',
  'config.error': 'a configuration error (file:line)',
} as const;

export type LogEvent = keyof typeof LOG_EVENTS;
