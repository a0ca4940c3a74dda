/**
 * connection-view.ts — what the policy may read of the SMTP connection: a narrow, read-only view.
 * The front end's Session (smtp/session.ts) satisfies it; the policy never sees the rest of it
 * (the transaction, the counters, the log), and --avenge builds one without a connection.
 */

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

/** A finished STARTTLS handshake: SSL_VERSION, SSL_CIPHER, SSL_CIPHER_BITS, SSL_ALG_BITS. */
export interface TlsFacts {
  readonly version: string;
  readonly cipher: string;
  readonly cipherBits: number;
  readonly algBits: number;
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
  /** after STARTTLS; null in clear */
  readonly tls: TlsFacts | null;
  /** the name the client authenticated as with SMTP AUTH (AUTH_USER); null when it did not */
  readonly authUser: string | null;
}
