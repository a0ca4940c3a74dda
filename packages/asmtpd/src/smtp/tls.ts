/**
 * tls.ts — STARTTLS in the front end: the options smtp-server gets from TLSCert, TLSKey and
 * TLSMinVersion (config/tls-files.ts reads and checks the pairs), and what a finished handshake
 * tells the session (Received "with ESMTPS (version:cipher)", X-Avenger `tls=`, SSL_* variables).
 *
 *   tlsOptions(files, auth) -> the smtp-server options: STARTTLS offered with the pairs, or hidden;
 *                              AUTH enabled with a backend (inside TLS, or also in clear with InsecureAuth)
 *   clearTextCommands(options, auth) -> the session's disabled commands before STARTTLS (AUTH hidden
 *                              there unless InsecureAuth), or undefined: the server's own
 *   sessionTls(cipher) -> TlsFacts      from tls.TLSSocket#getCipher()
 *   cipherBits(name) -> {cipherBits, algBits}
 *
 * Several pairs (an RSA and an ECDSA certificate) are given to OpenSSL together, which picks
 * per handshake the one the client's signature algorithms allow. TLSv1.0 and TLSv1.1 are never
 * offered (TLSMinVersion is TLSv1.2 or TLSv1.3); smtp-server's own default would be TLSv1.
 */
import type { CipherNameAndProtocol } from 'node:tls';
import type { TlsFiles } from '../config/tls-files.js';
import type { TlsFacts } from '../policy/connection-view.js';

export interface TlsServerOptions {
  hideSTARTTLS: boolean;
  disabledCommands: string[];
  key?: Buffer[];
  cert?: Buffer[];
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/** SMTP AUTH's settings: a backend exists (AuthFile), InsecureAuth, CRAM-MD5 offered in clear (AuthCramMD5 yes) */
export interface AuthSettings {
  on: boolean;
  insecure: boolean;
  cramInClear: boolean;
}

/**
 * STARTTLS only with certificates; AUTH only with a backend, and without certificates only with
 * InsecureAuth or CRAM-MD5 in clear (it could never be offered otherwise).
 */
export function tlsOptions(files: TlsFiles, auth: AuthSettings): TlsServerOptions {
  const authOff = !auth.on || (files.kind !== 'ok' && !auth.insecure && !auth.cramInClear);
  if (files.kind !== 'ok')
    return { hideSTARTTLS: true, disabledCommands: authOff ? ['AUTH', 'STARTTLS'] : ['STARTTLS'] };
  return {
    hideSTARTTLS: false,
    disabledCommands: authOff ? ['AUTH'] : [],
    key: files.pairs.map((p) => p.key),
    cert: files.pairs.map((p) => p.cert),
    minVersion: files.minVersion,
  };
}

/**
 * A session in clear: AUTH is neither advertised nor accepted before STARTTLS unless InsecureAuth
 * or CRAM-MD5 in clear (then the front end offers the session only the mechanisms it may use:
 * commands/auth.ts authMethodsFor). smtp-server reads a session's disabledCommands, when set,
 * instead of the server's; after STARTTLS the front end removes it.
 */
export function clearTextCommands(options: TlsServerOptions, auth: AuthSettings): string[] | undefined {
  if (auth.insecure || auth.cramInClear || options.disabledCommands.includes('AUTH')) return undefined;
  return [...options.disabledCommands, 'AUTH'];
}

/**
 * The secret-key bits of a cipher suite, from its name (OpenSSL's SSL_CIPHER_get_bits: the bits
 * used, and the bits of the algorithm; they differ only for 3DES). 0 when the name says nothing.
 */
export function cipherBits(name: string): { cipherBits: number; algBits: number } {
  const n = name.toUpperCase();
  const aes = /AES[_-]?(128|256)/.exec(n);
  if (aes) return { cipherBits: Number(aes[1]), algBits: Number(aes[1]) };
  if (n.includes('CHACHA20')) return { cipherBits: 256, algBits: 256 };
  if (n.includes('CAMELLIA256') || n.includes('ARIA256')) return { cipherBits: 256, algBits: 256 };
  if (n.includes('CAMELLIA128') || n.includes('ARIA128')) return { cipherBits: 128, algBits: 128 };
  if (n.includes('3DES') || n.includes('DES-CBC3')) return { cipherBits: 112, algBits: 168 };
  return { cipherBits: 0, algBits: 0 };
}

export function sessionTls(c: CipherNameAndProtocol): TlsFacts {
  return { version: c.version, cipher: c.name, ...cipherBits(c.name) };
}
