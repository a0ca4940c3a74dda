/**
 * script-helper-commands.ts — the rcpt scripts' helpers (docs/facts.md "Script helpers"):
 *
 *   runHelper(argv, env, io, makeResolver?) -> exit code     argv = [NAME, ARGS…]
 *
 *   spf MECHANISM…    evaluates the mechanisms as the sender's SPF record for CLIENT_IP, SENDER
 *                     (empty: postmaster@CLIENT_HELO) and CLIENT_HELO; prints the result word.
 *                     Exit 0 pass, 1 any other result, 2 bad usage (no or invalid mechanisms,
 *                     CLIENT_IP not an address).
 *   dns [-t TYPE] NAME  TYPE A (default), AAAA, MX (`PRIO:HOST`, by preference), TXT (a
 *                     record's strings joined), PTR (NAME an IP address or a reverse name);
 *                     one answer a line, control characters shown as spaces. Exit 0 answers,
 *                     1 none (NXDOMAIN, no records of the type), 2 temporary failure or bad usage.
 *   rbl ZONE…         looks CLIENT_IP up in each zone (facts/dnsbl.ts rules); prints `ZONE REASON`
 *                     per listing. Exit 0 listed, 1 not listed, 2 every lookup failed (or was
 *                     refused) or bad usage.
 * The resolver settings come from ASMTPD_DNS (script-helper-env.ts). Messages go to stderr as
 * `NAME: …`. Arguments and variables are data only.
 */
import { isIP } from 'node:net';
import { evaluatePolicy, isSpfRecord, parseRecord, type SpfResolver } from '@asmtpd/spf';
import { parseDomainName } from '../config/values.js';
import { createDnsResolver, dnsErrorCode, isTemporaryDnsError } from '../dns/resolver.js';
import { queryRbls } from '../facts/dnsbl.js';
import { parseHelperDns, type HelperDns } from '../daemon/script-helper-env.js';

export interface HelperIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

type Env = Readonly<Record<string, string | undefined>>;
type MakeResolver = (dns: HelperDns) => SpfResolver;

const defaultResolver: MakeResolver = (d) =>
  createDnsResolver({ kind: d.kind, servers: d.servers, protocol: d.protocol, timeoutMs: d.timeoutMs });

class Usage extends Error {}

const clean = (s: string): string => s.replace(/[\x00-\x1f\x7f]/g, ' ');

function clientIp(env: Env): string {
  const ip = env.CLIENT_IP ?? '';
  if (isIP(ip) === 0) throw new Usage(`CLIENT_IP ${JSON.stringify(ip)} is not an IP address`);
  return ip;
}

async function spf(
  args: readonly string[],
  env: Env,
  io: HelperIo,
  resolver: () => SpfResolver,
  dns: HelperDns,
): Promise<number> {
  const policy = args.join(' ').trim();
  if (policy === '') throw new Usage('usage: spf MECHANISM...');
  try {
    parseRecord(isSpfRecord(policy) ? policy : `v=spf1 ${policy}`);
  } catch (err) {
    throw new Usage(`invalid mechanisms: ${(err as Error).message}`);
  }
  const ip = clientIp(env);
  const r = await evaluatePolicy(policy, {
    resolver: resolver(),
    receiver: dns.receiver,
    ip,
    sender: env.SENDER ?? '',
    helo: env.CLIENT_HELO ?? '',
  });
  io.out(`${r.result}\n`);
  return r.result === 'pass' ? 0 : 1;
}

/** The address a reverse name (d.c.b.a.in-addr.arpa, 32 nibbles.ip6.arpa) stands for, or null. */
export function reverseNameToIp(name: string): string | null {
  const n = name.toLowerCase().replace(/\.$/, '');
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(n);
  if (v4) {
    const ip = [v4[4], v4[3], v4[2], v4[1]].join('.');
    return isIP(ip) === 4 ? ip : null;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(n);
  if (!v6?.[1]) return null;
  const hex = v6[1]
    .split('.')
    .filter((x) => x !== '')
    .reverse()
    .join('');
  return hex.match(/.{4}/g)!.join(':');
}

const TYPES = ['A', 'AAAA', 'MX', 'TXT', 'PTR'] as const;
type DnsType = (typeof TYPES)[number];

function parseDnsArgs(args: readonly string[]): { type: DnsType; name: string } {
  let type = 'A';
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-t') type = args[++i] ?? '';
    else if (a.startsWith('-t') && a.length > 2) type = a.slice(2);
    else if (a === '--') {
      names.push(...args.slice(i + 1));
      break;
    } else if (a.startsWith('-') && a !== '-') throw new Usage(`unknown option ${a}`);
    else names.push(a);
  }
  const t = type.toUpperCase();
  if (!(TYPES as readonly string[]).includes(t))
    throw new Usage(`type ${JSON.stringify(type)}: expected ${TYPES.join(', ')}`);
  if (names.length !== 1) throw new Usage('usage: dns [-t A|AAAA|MX|TXT|PTR] NAME');
  const name = names[0]!;
  if (name === '' || name.length > 254 || /[\s\x00-\x1f\x7f]/.test(name))
    throw new Usage(`${JSON.stringify(name)} is not a DNS name`);
  return { type: t as DnsType, name };
}

async function lookup(r: SpfResolver, type: DnsType, name: string): Promise<string[]> {
  switch (type) {
    case 'A':
      return r.resolve4(name);
    case 'AAAA':
      return r.resolve6(name);
    case 'MX':
      return (await r.resolveMx(name))
        .sort((a, b) => a.priority - b.priority || a.exchange.localeCompare(b.exchange))
        .map((m) => `${m.priority}:${m.exchange.replace(/\.$/, '') || '.'}`);
    case 'TXT':
      return (await r.resolveTxt(name)).map((strings) => strings.join(''));
    case 'PTR': {
      const ip = isIP(name) !== 0 ? name : reverseNameToIp(name);
      if (ip === null) throw new Usage(`PTR: ${JSON.stringify(name)} is not an IP address or a reverse name`);
      return (await r.reverse(ip)).map((n) => n.replace(/\.$/, ''));
    }
  }
}

async function dnsCommand(args: readonly string[], io: HelperIo, resolver: () => SpfResolver): Promise<number> {
  const { type, name } = parseDnsArgs(args);
  let answers: string[];
  try {
    answers = await lookup(resolver(), type, name);
  } catch (err) {
    if (err instanceof Usage) throw err;
    if (!isTemporaryDnsError(err)) return 1;
    io.err(`dns: ${type} ${name}: temporary failure (${dnsErrorCode(err)})\n`);
    return 2;
  }
  for (const a of answers) io.out(`${clean(a)}\n`);
  return answers.length > 0 ? 0 : 1;
}

async function rbl(args: readonly string[], env: Env, io: HelperIo, resolver: () => SpfResolver): Promise<number> {
  if (args.length === 0) throw new Usage('usage: rbl ZONE...');
  const zones = args.map((z) => {
    const p = parseDomainName(z);
    if (p.kind === 'error') throw new Usage(`zone ${JSON.stringify(z)}: ${p.message}`);
    return p.value;
  });
  const unique = [...new Set(zones)];
  const r = await queryRbls(
    clientIp(env),
    unique.map((zone) => ({ zone, score: 1, reason: null })),
    resolver(),
  );
  for (const l of r.listed) io.out(`${l.zone} ${clean(l.reason)}\n`);
  for (const p of r.problems)
    io.err(
      `rbl: ${p.zone}: ${p.kind === 'lookup' ? 'lookup failed' : p.kind === 'refused' ? 'refused the query' : 'answer outside 127.0.0.0/8 ignored'} (${p.detail})${p.kind === 'refused' ? `: ${p.reason}` : ''}\n`,
    );
  if (r.listed.length > 0) return 0;
  const failed = r.problems.filter((p) => p.kind !== 'ignored').length;
  return failed === unique.length ? 2 : 1;
}

export async function runHelper(
  argv: readonly string[],
  env: Env,
  io: HelperIo,
  makeResolver: MakeResolver = defaultResolver,
): Promise<number> {
  const [name = '', ...args] = argv;
  try {
    if (!['spf', 'dns', 'rbl'].includes(name))
      throw new Usage(`unknown helper ${JSON.stringify(name)} (spf, dns, rbl)`);
    const dns = parseHelperDns(env.ASMTPD_DNS);
    let resolver: SpfResolver | null = null;
    const get = (): SpfResolver => (resolver ??= makeResolver(dns));
    if (name === 'spf') return await spf(args, env, io, get, dns);
    if (name === 'dns') return await dnsCommand(args, io, get);
    return await rbl(args, env, io, get);
  } catch (err) {
    io.err(`${name || 'asmtpd-helper'}: ${(err as Error).message}\n`);
    return 2;
  }
}
