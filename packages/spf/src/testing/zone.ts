/*
 * testing/zone.ts — the zone data of the OpenSPF YAML suites, and an in-memory resolver.
 *
 * Public: loadSuite(path) -> Scenario[], Zone (lookup(name, type)), MemoryResolver (an
 *   SpfResolver over a Zone that answers like node's resolver: ENOTFOUND, ENODATA, ETIMEOUT,
 *   ESERVFAIL), SuiteTest.
 * Conventions served (see /work/shared/spf/README.md): SPF entries are served as TXT unless
 *   the name has TXT entries of its own ("TXT: NONE" counts and means none); a name with
 *   TIMEOUT times out for types it has no records of; SERVFAIL likewise fails; names absent
 *   from the zone are NXDOMAIN, except names under "error." which fail; a CNAME is followed
 *   one level; owner names compare case-insensitively.
 * Used by the tests, the spf-check DNS run and bench/spf. Not part of the public API.
 */
import { readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';
import { parseClientIp, reverseName } from '../ip.js';
import type { MxRecord, SpfResolver } from '../resolver.js';

export type RecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'CNAME';

export type ZoneEntry =
  | { readonly type: 'A' | 'AAAA' | 'PTR' | 'CNAME'; readonly value: string }
  | { readonly type: 'MX'; readonly priority: number; readonly exchange: string }
  | { readonly type: 'TXT' | 'SPF'; readonly strings: readonly string[] }
  | { readonly type: 'TXTNONE' | 'TIMEOUT' | 'SERVFAIL' };

export type ZoneAnswer =
  | {
      readonly kind: 'records';
      readonly records: readonly ZoneEntry[];
      readonly cname?: { readonly owner: string; readonly target: string };
    }
  | { readonly kind: 'nxdomain' | 'nodata' | 'timeout' | 'servfail' };

export interface SuiteTest {
  readonly scenario: string;
  readonly name: string;
  readonly host: string;
  readonly mailfrom: string;
  readonly helo: string;
  /** acceptable results, the first preferred */
  readonly results: readonly string[];
  readonly explanation?: string;
  readonly spec?: string;
}

export interface Scenario {
  readonly description: string;
  readonly tests: readonly SuiteTest[];
  readonly zone: Zone;
}

function norm(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

export class Zone {
  private readonly names = new Map<string, ZoneEntry[]>();

  add(owner: string, entry: ZoneEntry): void {
    const key = norm(owner);
    let list = this.names.get(key);
    if (list === undefined) this.names.set(key, (list = []));
    list.push(entry);
  }

  /** The answer for a query, following a CNAME one level. */
  lookup(nameIn: string, type: RecordType, followCname = true): ZoneAnswer {
    const name = norm(nameIn);
    const entries = this.names.get(name);
    if (entries === undefined) {
      return name.startsWith('error.') ? { kind: 'servfail' } : { kind: 'nxdomain' };
    }
    let records: ZoneEntry[];
    if (type === 'TXT') {
      const hasTxt = entries.some((e) => e.type === 'TXT' || e.type === 'TXTNONE');
      records = entries.filter((e) => e.type === (hasTxt ? 'TXT' : 'SPF'));
    } else {
      records = entries.filter((e) => e.type === type);
    }
    if (records.length > 0) return { kind: 'records', records };
    if (entries.some((e) => e.type === 'TIMEOUT')) return { kind: 'timeout' };
    if (entries.some((e) => e.type === 'SERVFAIL')) return { kind: 'servfail' };
    const cname = entries.find((e) => e.type === 'CNAME');
    if (cname !== undefined && cname.type === 'CNAME' && followCname && type !== 'CNAME') {
      const target = norm(cname.value);
      const sub = this.lookup(target, type, false);
      if (sub.kind === 'records') return { kind: 'records', records: sub.records, cname: { owner: name, target } };
      if (sub.kind === 'nxdomain' || sub.kind === 'nodata')
        return { kind: 'records', records: [], cname: { owner: name, target } };
      return sub;
    }
    return { kind: 'nodata' };
  }
}

function entryOf(key: string, value: unknown): ZoneEntry {
  switch (key) {
    case 'A':
    case 'AAAA':
    case 'PTR':
    case 'CNAME':
      return { type: key, value: String(value) };
    case 'MX': {
      const [priority, exchange] = value as [number, string];
      return { type: 'MX', priority: Number(priority), exchange: String(exchange) };
    }
    case 'TXT':
    case 'SPF':
      if (key === 'TXT' && value === 'NONE') return { type: 'TXTNONE' };
      return { type: key, strings: Array.isArray(value) ? value.map(String) : [String(value)] };
    case 'TIMEOUT':
    case 'SERVFAIL':
      return { type: key };
    default:
      throw new Error(`zone: unknown record type ${key}`);
  }
}

interface RawTest {
  host: string;
  mailfrom?: string;
  helo?: string;
  result: string | string[];
  explanation?: string;
  spec?: string;
}

/** Reads a suite file (several YAML documents, one scenario each). */
export function loadSuite(path: string): Scenario[] {
  const docs = loadAll(readFileSync(path, 'utf8')) as Array<{
    description: string;
    tests: Record<string, RawTest>;
    zonedata?: Record<string, Array<string | Record<string, unknown>>>;
  }>;
  return docs
    .filter((d) => d !== null && typeof d === 'object')
    .map((d) => {
      const zone = new Zone();
      for (const [owner, list] of Object.entries(d.zonedata ?? {})) {
        for (const item of list ?? []) {
          if (typeof item === 'string') {
            zone.add(owner, entryOf(item, true));
            continue;
          }
          for (const [k, v] of Object.entries(item)) zone.add(owner, entryOf(k, v));
        }
      }
      const tests = Object.entries(d.tests).map(
        ([name, t]): SuiteTest => ({
          scenario: d.description,
          name,
          host: String(t.host),
          mailfrom: t.mailfrom === undefined || t.mailfrom === null ? '' : String(t.mailfrom),
          helo: t.helo === undefined || t.helo === null ? '' : String(t.helo),
          results: (Array.isArray(t.result) ? t.result : [t.result]).map((r) => String(r).toLowerCase()),
          ...(t.explanation !== undefined ? { explanation: String(t.explanation) } : {}),
          ...(t.spec !== undefined ? { spec: String(t.spec) } : {}),
        }),
      );
      return { description: d.description, tests, zone };
    });
}

function dnsError(code: string, name: string): Error {
  return Object.assign(new Error(`${code} ${name}`), { code, hostname: name });
}

/** An SpfResolver answering from a Zone, with node's error codes. */
export class MemoryResolver implements SpfResolver {
  queries = 0;
  constructor(private readonly zone: Zone) {}

  private ask(name: string, type: RecordType): ZoneEntry[] {
    this.queries++;
    const a = this.zone.lookup(name, type);
    switch (a.kind) {
      case 'records':
        return [...a.records];
      case 'nxdomain':
        throw dnsError('ENOTFOUND', name);
      case 'nodata':
        throw dnsError('ENODATA', name);
      case 'timeout':
        throw dnsError('ETIMEOUT', name);
      case 'servfail':
        throw dnsError('ESERVFAIL', name);
    }
  }

  async resolveTxt(name: string): Promise<string[][]> {
    return this.ask(name, 'TXT').map((e) => [...(e as { strings: readonly string[] }).strings]);
  }
  async resolveMx(name: string): Promise<MxRecord[]> {
    return this.ask(name, 'MX').map((e) => {
      const m = e as { priority: number; exchange: string };
      return { priority: m.priority, exchange: m.exchange };
    });
  }
  async resolve4(name: string): Promise<string[]> {
    return this.ask(name, 'A').map((e) => (e as { value: string }).value);
  }
  async resolve6(name: string): Promise<string[]> {
    return this.ask(name, 'AAAA').map((e) => (e as { value: string }).value);
  }
  async reverse(ip: string): Promise<string[]> {
    const c = parseClientIp(ip);
    if (c === undefined) throw dnsError('EINVAL', ip);
    return this.ask(reverseName(c), 'PTR').map((e) => (e as { value: string }).value);
  }
}
