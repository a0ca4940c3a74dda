/**
 * domains.ts — the DomainFile: virtual domains whose every address belongs to one local user
 * (spec asmtpd.md §3: `anything@domain` is handled as `user+[prefix+]anything`).
 *
 *   parseDomainFile(text, file)        -> {map, issues}          (pure)
 *   loadDomainFile(path)               -> {kind:'ok', map, issues} | {kind:'error', issues}
 *   createDomainTable(path | null, options?) -> DomainTable { lookup(domain) -> DomainEntry | null }
 *
 * Format, one domain a line:
 *     # comment
 *     example.net      bob            # anything@example.net is bob+anything
 *     lists.example    bob+lists      # anything@lists.example is bob+lists+anything
 * Fields are separated by blanks; `#` starts a comment anywhere (domains and user names never
 * contain it). The domain is compared lower-cased, without a trailing dot. The target is a user
 * name, optionally followed by `+` and a prefix: `+` always separates them in this file, whatever
 * the Separator (user names never contain `+`, while `-` is common in them); the prefix keeps its
 * case and may itself contain the Separator. extension.ts applyDomainFile() joins prefix and local
 * part with the Separator. A prefix never names a hidden file or a directory: no `/`, no part
 * starting with `.`.
 *
 * A bad line (bad domain, bad user, extra words, a domain given twice: the first wins) is
 * reported as `FILE:LINE: message` and skipped; the other lines still apply. The table re-reads
 * the file when it changes (config/reloading-file.ts: at most one stat a second).
 */
import { parseAccountName, parseDomainName } from '../config/values.js';
import type { ConfigIssue } from '../config/issues.js';
import { normalizeDomain } from './address.js';
import { createReloadingFile, readDataFile, type FileParse, type ReloadOptions } from '../config/reloading-file.js';

export interface DomainEntry {
  /** the local account, lower-case */
  user: string;
  /** put before the local part in the extension (as written); null = the local part alone */
  prefix: string | null;
}

/** domain (lower-case, no trailing dot) → entry */
export type DomainMap = ReadonlyMap<string, DomainEntry>;

export type DomainFileResult =
  | { kind: 'ok'; map: DomainMap; /** bad lines, skipped */ issues: ConfigIssue[] }
  | { kind: 'error'; /** the file could not be read (line 0) */ issues: ConfigIssue[] };

export interface DomainTable {
  lookup(domain: string): DomainEntry | null;
}

/** `user` or `user+prefix` → entry, or what is wrong with it. */
export function parseDomainTarget(
  text: string,
): { kind: 'ok'; entry: DomainEntry } | { kind: 'error'; message: string } {
  const plus = text.indexOf('+');
  const userText = plus < 0 ? text : text.slice(0, plus);
  const prefix = plus < 0 ? null : text.slice(plus + 1);
  const user = parseAccountName(userText);
  if (user.kind === 'error') return { kind: 'error', message: `bad user ${JSON.stringify(userText)}: ${user.message}` };
  if (prefix !== null) {
    if (prefix === '') return { kind: 'error', message: `empty prefix after + in ${JSON.stringify(text)}` };
    const parts = prefix.split('+');
    if (prefix.includes('/') || /[\x00-\x1f\x7f]/.test(prefix) || parts.some((p) => p === '' || p.startsWith('.'))) {
      return {
        kind: 'error',
        message: `bad prefix ${JSON.stringify(prefix)}: no /, no empty part, no part starting with .`,
      };
    }
  }
  return { kind: 'ok', entry: { user: user.value, prefix } };
}

/** The DomainFile's text → map and the bad lines. */
export function parseDomainFile(text: string, file: string): { map: Map<string, DomainEntry>; issues: ConfigIssue[] } {
  const map = new Map<string, DomainEntry>();
  const firstLine = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const hash = raw.indexOf('#');
    const words = (hash < 0 ? raw : raw.slice(0, hash)).split(/[ \t]+/).filter((w) => w !== '');
    if (words.length === 0) return;
    const issue = (message: string): void => void issues.push({ file, line, message });
    const [domainText = '', targetText, ...extra] = words;
    if (targetText === undefined) return issue(`${domainText}: missing user (expected: domain user[+prefix])`);
    if (extra.length > 0) return issue(`too many words (expected: domain user[+prefix]); a comment starts with #`);
    const domain = parseDomainName(domainText);
    if (domain.kind === 'error') return issue(`bad domain ${JSON.stringify(domainText)}: ${domain.message}`);
    const target = parseDomainTarget(targetText);
    if (target.kind === 'error') return issue(`${domain.value}: ${target.message}`);
    const earlier = firstLine.get(domain.value);
    if (earlier !== undefined)
      return issue(`${domain.value}: given twice (first at line ${earlier}); this line is ignored`);
    firstLine.set(domain.value, line);
    map.set(domain.value, target.entry);
  });
  return { map, issues };
}

/** Read and parse the DomainFile once. */
export function loadDomainFile(path: string): DomainFileResult {
  const read = readDataFile(path);
  if (read.kind === 'error') return { kind: 'error', issues: [{ file: path, line: 0, message: read.message }] };
  const { map, issues } = parseDomainFile(read.text, path);
  return { kind: 'ok', map, issues };
}

/** The DomainFile as a table kept up to date; null path = no virtual domains. */
export function createDomainTable(path: string | null, options: ReloadOptions = {}): DomainTable {
  if (path === null) return { lookup: () => null };
  const parse = (text: string, name: string): FileParse<DomainMap> => {
    const { map, issues } = parseDomainFile(text, name);
    return { value: map, issues };
  };
  const file = createReloadingFile<DomainMap>(path, parse, new Map(), options);
  return {
    lookup(domain) {
      return file.current().get(normalizeDomain(domain)) ?? null;
    },
  };
}
