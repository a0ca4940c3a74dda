/**
 * script-helper-env.ts — what the rcpt scripts' helpers `spf`, `dns` and `rbl` need from the
 * daemon (docs/facts.md "Script helpers"), as environment variables:
 *
 *   helperEnvironment(config) -> {ASMTPD_NODE, ASMTPD_HELPER, ASMTPD_DNS}
 *     ASMTPD_NODE    this node binary (process.execPath)
 *     ASMTPD_HELPER  absolute path of dist/cli/script-helper.js
 *     ASMTPD_DNS     JSON {kind, servers: ["ip[:port]"…], protocol, timeoutMs, receiver}
 *                    (DNSResolver, DNSServer as written, DNSProtocol, DNSTimeout, Hostname)
 *   parseHelperDns(text) -> HelperDns   (the helper's side; throws Error on a bad value)
 *   dnsOptionsOf(config) -> DnsOptions  the daemon's resolver settings (also --spf, --rbl)
 *
 * The shell functions of the runner's prelude run "$ASMTPD_NODE" "$ASMTPD_HELPER" NAME "$@".
 * Values are data in the environment, never shell text.
 */
import { fileURLToPath } from 'node:url';
import type { Config, DnsServer } from '../config/types.js';
import { parseDnsServer } from '../config/fact-values.js';
import type { DnsOptions } from '../dns/resolver.js';

export interface HelperDns {
  kind: 'tangerine' | 'system';
  servers: DnsServer[];
  protocol: 'http' | 'https';
  timeoutMs: number;
  /** %{r} of the `spf` helper (Hostname) */
  receiver: string;
}

export const HELPER_PATH = fileURLToPath(new URL('../cli/script-helper.js', import.meta.url));

export function dnsOptionsOf(
  config: Pick<Config, 'dnsResolver' | 'dnsServers' | 'dnsProtocol' | 'dnsTimeoutMs'>,
): DnsOptions {
  return {
    kind: config.dnsResolver,
    servers: config.dnsServers,
    protocol: config.dnsProtocol,
    timeoutMs: config.dnsTimeoutMs,
  };
}

type HelperConfig = Pick<Config, 'dnsResolver' | 'dnsServers' | 'dnsProtocol' | 'dnsTimeoutMs' | 'hostname'>;

export function helperEnvironment(config: HelperConfig): Record<string, string> {
  const dns = {
    kind: config.dnsResolver,
    servers: config.dnsServers.map((s) => s.text),
    protocol: config.dnsProtocol,
    timeoutMs: config.dnsTimeoutMs,
    receiver: config.hostname,
  };
  return { ASMTPD_NODE: process.execPath, ASMTPD_HELPER: HELPER_PATH, ASMTPD_DNS: JSON.stringify(dns) };
}

export function parseHelperDns(text: string | undefined): HelperDns {
  if (text === undefined || text === '') throw new Error('ASMTPD_DNS is not set (run from an asmtpd rcpt script)');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('ASMTPD_DNS is not JSON');
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (o.kind !== 'tangerine' && o.kind !== 'system') throw new Error('ASMTPD_DNS: kind is tangerine or system');
  if (o.protocol !== 'http' && o.protocol !== 'https') throw new Error('ASMTPD_DNS: protocol is http or https');
  const timeoutMs = o.timeoutMs;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new Error('ASMTPD_DNS: timeoutMs is a positive integer');
  if (!Array.isArray(o.servers)) throw new Error('ASMTPD_DNS: servers is a list');
  const servers = o.servers.map((s: unknown) => {
    const p = typeof s === 'string' ? parseDnsServer(s) : null;
    if (p === null || p.kind === 'error') throw new Error(`ASMTPD_DNS: bad server ${JSON.stringify(s)}`);
    return p.value;
  });
  const receiver = typeof o.receiver === 'string' && o.receiver !== '' ? o.receiver : 'unknown';
  return { kind: o.kind, servers, protocol: o.protocol, timeoutMs, receiver };
}
