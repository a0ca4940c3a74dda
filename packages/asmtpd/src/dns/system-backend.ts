/**
 * system-backend.ts — node's c-ares Resolver as the system resolver's backend, holding DNSTimeout.
 *
 *   systemBackend({servers, timeoutMs}, makeResolver?) -> LookupBackend
 *
 * c-ares (1.34 in Node 20) times each query by the answer times it has seen from the server, at
 * least ~1 s: after many fast answers (a local unbound) an answer that takes 1.5 s is a timeout at
 * 1 s, whatever `timeout` said, and Node 20 has no maxTimeout to stop it. So a timeout that comes
 * before DNSTimeout is asked once more on a fresh channel, which has no history and waits what is
 * left of DNSTimeout (~50 µs to make; its socket closes with its last query). The common case — an
 * answer, or a timeout at DNSTimeout — costs nothing more.
 */
import { promises as dnsPromises } from 'node:dns';
import type { LookupBackend } from './negative-cache.js';

type Method = 'resolveTxt' | 'resolveMx' | 'resolve4' | 'resolve6' | 'resolvePtr';
type Channel = Pick<dnsPromises.Resolver, Method>;

/** Below this much time left a second try is not worth a query. */
const MIN_RETRY_MS = 100;

export interface SystemBackendOptions {
  /** "addr" or "[addr]:port" strings; none: /etc/resolv.conf's */
  servers: readonly string[];
  timeoutMs: number;
}

export function systemBackend(
  o: SystemBackendOptions,
  makeChannel: (timeoutMs: number) => Channel = (timeoutMs) => {
    const r = new dnsPromises.Resolver({ timeout: timeoutMs, tries: 1 });
    if (o.servers.length > 0) r.setServers([...o.servers]);
    return r;
  },
): LookupBackend {
  const main = makeChannel(o.timeoutMs);
  const ask = async <T>(method: Method, name: string): Promise<T> => {
    const started = performance.now();
    try {
      return (await main[method](name)) as T;
    } catch (err) {
      const left = Math.floor(o.timeoutMs - (performance.now() - started));
      if ((err as { code?: unknown }).code !== 'ETIMEOUT' || left < MIN_RETRY_MS) throw err;
      return (await makeChannel(left)[method](name)) as T;
    }
  };
  return {
    resolveTxt: (name) => ask('resolveTxt', name),
    resolveMx: (name) => ask('resolveMx', name),
    resolve4: (name) => ask('resolve4', name),
    resolve6: (name) => ask('resolve6', name),
    resolvePtr: (name) => ask('resolvePtr', name),
  };
}
