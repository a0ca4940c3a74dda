/**
 * tls-files.ts — the TLS certificate/key pairs of TLSCert and TLSKey, read and checked together:
 * the same number of each, every file readable, each key the key of its certificate (OpenSSL's
 * own check, through tls.createSecureContext). Used by the loader (so --check and a SIGHUP with a
 * broken pair are refused) and by the front end, which serves what it read.
 *
 *   readTlsPairs(config) -> {kind: 'none'} | {kind: 'ok', pairs, minVersion} | {kind: 'error', message}
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { describeFileError } from './files.js';
import type { Config } from './types.js';

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  certPath: string;
}

export type TlsFiles =
  | { kind: 'none' }
  | { kind: 'ok'; pairs: TlsPair[]; minVersion: Config['tlsMinVersion'] }
  | { kind: 'error'; message: string };

export function readTlsPairs(config: Pick<Config, 'tlsCerts' | 'tlsKeys' | 'tlsMinVersion'>): TlsFiles {
  const { tlsCerts: certs, tlsKeys: keys } = config;
  if (certs.length === 0 && keys.length === 0) return { kind: 'none' };
  if (certs.length !== keys.length) {
    return {
      kind: 'error',
      message: `${certs.length} TLSCert but ${keys.length} TLSKey: give one key per certificate`,
    };
  }
  const pairs: TlsPair[] = [];
  for (const [i, certPath] of certs.entries()) {
    const keyPath = keys[i]!;
    let pair: TlsPair;
    try {
      pair = { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath };
    } catch (err) {
      return { kind: 'error', message: describeFileError((err as NodeJS.ErrnoException).path ?? certPath, err) };
    }
    try {
      createSecureContext({ cert: pair.cert, key: pair.key, minVersion: config.tlsMinVersion });
    } catch (err) {
      return { kind: 'error', message: `${certPath} with ${keyPath}: ${(err as Error).message}` };
    }
    pairs.push(pair);
  }
  return { kind: 'ok', pairs, minVersion: config.tlsMinVersion };
}
