/**
 * connection-view.ts — what the policy may read of the SMTP connection: a narrow, read-only view.
 * The front end's Session (smtp/session.ts) satisfies it; the policy never sees the rest of it
 * (the transaction, the counters, the log), and --avenge builds one without a connection.
 */

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

export interface ConnectionView {
  readonly client: Endpoint;
  readonly local: Endpoint;
  /** argument of HELO/EHLO; null before either */
  readonly helo: string | null;
  /** protocol abuse seen so far: data before the banner, or pipelining where it was not offered */
  readonly pipelining: 'pre-greeting' | 'unadvertised' | null;
  /** the client sent an HTTP verb (POST, GET, CONNECT, HEAD) as a command */
  readonly post: boolean;
}
