/**
 * aliases.ts — the AliasFile (aliases(5) format) and what an alias stands for at RCPT time.
 *
 *   parseAliases(text, file)           -> {map, issues}          (pure)
 *   loadAliasFile(path)                -> {kind:'ok', map, issues} | {kind:'error', issues}
 *   createAliasTable(path | null, options?) -> AliasTable { lookup(name) -> AliasEntry | null }
 *   resolveAlias(name, table, isLocalUser, isLocalDomain?) -> Promise<AliasResolution>
 *
 * Format (as sendmail's and Postfix's aliases(5)):
 *     # comment
 *     postmaster: root
 *     root:       bob, alice@example.org
 *     lists:      :include:/etc/mail/lists,
 *                 "|/usr/local/bin/archive --all", /var/mail/archive
 *     "odd name": \bob
 * `name: target, target, …`. A line starting with a blank continues the entry above; blank lines
 * and lines whose first non-blank character is `#` are ignored (they neither end nor continue an
 * entry). Names and targets may be double-quoted (a backslash escapes one character inside
 * quotes); a comma inside quotes does not separate. Names are compared lower-cased and are local:
 * no `@` (DomainFile is for other domains). Targets, by their first character after unquoting:
 * `:include:/path` (recorded, never followed), `|command`, `/file`, `\user` (a local user, never
 * aliased again), anything else an address (`user` or `user@domain`).
 * A bad line (no colon, bad name, no target, a target with unquoted blanks, a name given twice:
 * the first wins) is reported as `FILE:LINE: message` and skipped. The table re-reads the file
 * when it changes (config/reloading-file.ts: at most one stat a second).
 *
 * Resolution (spec asmtpd.md §3: "an alias that resolves to one local user is policy-checked as
 * that user"): targets are expanded alias → alias, each alias at most once, MAX_ALIAS_DEPTH deep.
 * `user@domain` counts as local `user` when isLocalDomain(domain). An alias met again while it is
 * being expanded (`bob: bob, …`, or a loop `a: b`, `b: a`) stands for the local user of that name,
 * as sendmail does. If everything ends in exactly one local name and isLocalUser(name) says it is
 * an account → {kind:'user'}; otherwise {kind:'multiple', targets} lists the leaves (several, or
 * one that is a command, file, include, remote address, non-account or too deep).
 */
import { splitAddress, unquoteLocal } from './address.js';
import type { ConfigIssue } from '../config/issues.js';
import { createReloadingFile, readDataFile, type FileParse, type ReloadOptions } from '../config/reloading-file.js';

export type AliasTarget =
  | {
      kind: 'address';
      /** as written, unquoted if the whole target was quoted */ address: string;
      /** `\user` */ literal: boolean;
    }
  | { kind: 'command'; /** after the `|` */ command: string }
  | { kind: 'file'; path: string }
  | { kind: 'include'; path: string };

export interface AliasEntry {
  /** lower-case */
  name: string;
  targets: AliasTarget[];
  /** where the entry starts in the file */
  line: number;
}

export type AliasMap = ReadonlyMap<string, AliasEntry>;

export type AliasFileResult =
  | { kind: 'ok'; map: AliasMap; /** bad lines, skipped */ issues: ConfigIssue[] }
  | { kind: 'error'; /** the file could not be read (line 0) */ issues: ConfigIssue[] };

export interface AliasTable {
  /** the alias called `name` (any case), or null */
  lookup(name: string): AliasEntry | null;
}

export type AliasResolution =
  | { kind: 'user'; /** the local account, lower-case */ user: string }
  | { kind: 'multiple'; targets: AliasTarget[] }
  | { kind: 'none' };

export const MAX_ALIAS_DEPTH = 10;

const BLANK = /[ \t]/;
const CONTROL = /[\x00-\x1f\x7f]/;

interface LogicalLine {
  /** where it starts */
  line: number;
  /** continuations joined by one blank */
  text: string;
  /** a continuation line with no entry above it */
  orphan: boolean;
}

function logicalLines(text: string): LogicalLine[] {
  const out: LogicalLine[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const trimmed = raw.trim();
      if (trimmed === '' || trimmed.startsWith('#')) return;
      const continues = BLANK.test(raw[0] ?? '');
      const last = out[out.length - 1];
      if (continues && last !== undefined) last.text += ` ${trimmed}`;
      else out.push({ line: index + 1, text: trimmed, orphan: continues });
    });
  return out;
}

/** Split at `sep` outside double quotes; quotes and escapes are kept. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && quoted && i + 1 < text.length) {
      current += c + text[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

/** `"a b"` → `a b` (backslash escapes one character); null when not one quoted string. */
function unquoteWhole(text: string): string | null {
  if (!text.startsWith('"')) return null;
  let out = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && i + 1 < text.length) out += text[++i];
    else if (c === '"') return i === text.length - 1 ? out : null;
    else out += c;
  }
  return null;
}

/** One target as written → its kind, or what is wrong with it. */
export function parseAliasTarget(written: string): AliasTarget | { kind: 'error'; message: string } {
  const whole = unquoteWhole(written);
  const text = whole ?? written;
  const bad = (why: string): { kind: 'error'; message: string } => ({
    kind: 'error',
    message: `bad target ${JSON.stringify(written)}: ${why}`,
  });
  if (CONTROL.test(text)) return bad('control character');
  if (text.toLowerCase().startsWith(':include:')) {
    const path = text.slice(':include:'.length).trim();
    return path.startsWith('/') ? { kind: 'include', path } : bad(':include: needs an absolute path');
  }
  if (text.startsWith('|')) return text.length > 1 ? { kind: 'command', command: text.slice(1) } : bad('empty command');
  if (text.startsWith('/')) return { kind: 'file', path: text };
  const literal = text.startsWith('\\');
  const address = literal ? text.slice(1) : text;
  if (address === '' || address.startsWith('@') || address.endsWith('@')) return bad('expected user or user@domain');
  if (whole === null && splitOutsideQuotes(address.replace(/\t/g, ' '), ' ').length > 1)
    return bad('blanks in an address; separate targets with commas');
  return { kind: 'address', address, literal };
}

/** `name: targets` → entry, or what is wrong with it. */
function parseEntry({ text, line, orphan }: LogicalLine): AliasEntry | string {
  if (orphan) return 'continuation line (starting with a blank) with no entry above it';
  const [nameText = '', ...rest] = splitOutsideQuotes(text, ':');
  if (rest.length === 0) return 'expected name: target, target, ...';
  const written = nameText.trim();
  const name = (unquoteWhole(written) ?? written).toLowerCase();
  if (name === '') return 'empty alias name';
  if (unquoteWhole(written) === null && (BLANK.test(name) || name.includes('"')))
    return `bad alias name ${JSON.stringify(written)}`;
  if (name.includes('@'))
    return `alias name ${JSON.stringify(written)} has an @: aliases are local names (DomainFile is for other domains)`;
  if (CONTROL.test(name)) return `bad alias name ${JSON.stringify(written)}: control character`;
  const targets: AliasTarget[] = [];
  for (const item of splitOutsideQuotes(rest.join(':'), ',')) {
    const trimmed = item.trim();
    if (trimmed === '') continue; // `a, , b` and a trailing comma are tolerated
    const target = parseAliasTarget(trimmed);
    if (target.kind === 'error') return `${name}: ${target.message}`;
    targets.push(target);
  }
  if (targets.length === 0) return `${name}: no target`;
  return { name, targets, line };
}

/** The AliasFile's text → map and the bad entries. */
export function parseAliases(text: string, file: string): { map: Map<string, AliasEntry>; issues: ConfigIssue[] } {
  const map = new Map<string, AliasEntry>();
  const issues: ConfigIssue[] = [];
  for (const logical of logicalLines(text)) {
    const entry = parseEntry(logical);
    if (typeof entry === 'string') {
      issues.push({ file, line: logical.line, message: entry });
      continue;
    }
    const earlier = map.get(entry.name);
    if (earlier !== undefined) {
      issues.push({
        file,
        line: logical.line,
        message: `${entry.name}: given twice (first at line ${earlier.line}); this entry is ignored`,
      });
      continue;
    }
    map.set(entry.name, entry);
  }
  return { map, issues };
}

/** Read and parse the AliasFile once. */
export function loadAliasFile(path: string): AliasFileResult {
  const read = readDataFile(path);
  if (read.kind === 'error') return { kind: 'error', issues: [{ file: path, line: 0, message: read.message }] };
  const { map, issues } = parseAliases(read.text, path);
  return { kind: 'ok', map, issues };
}

/** The AliasFile as a table kept up to date; null path = no aliases. */
export function createAliasTable(path: string | null, options: ReloadOptions = {}): AliasTable {
  if (path === null) return { lookup: () => null };
  const parse = (text: string, name: string): FileParse<AliasMap> => {
    const { map, issues } = parseAliases(text, name);
    return { value: map, issues };
  };
  const file = createReloadingFile<AliasMap>(path, parse, new Map(), options);
  return { lookup: (name) => file.current().get(name.toLowerCase()) ?? null };
}

/** A table over a map (used by the unit tests only). */
export function aliasTableOf(map: AliasMap): AliasTable {
  return { lookup: (name) => map.get(name.toLowerCase()) ?? null };
}

/** The local name an address target stands for (lower-case), or null for another domain. */
function localNameOf(address: string, isLocalDomain: (domain: string) => boolean): string | null {
  const { local, domain } = splitAddress(address);
  if (domain !== '' && !isLocalDomain(domain)) return null;
  return unquoteLocal(local).toLowerCase();
}

/** Follow `name` through the table; see the header for the rules. */
export async function resolveAlias(
  name: string,
  table: AliasTable,
  isLocalUser: (user: string) => boolean | Promise<boolean>,
  isLocalDomain: (domain: string) => boolean = () => false,
): Promise<AliasResolution> {
  const start = table.lookup(name);
  if (start === null) return { kind: 'none' };
  /** leaves, deduplicated; `local` = a local name that may be an account */
  const leaves = new Map<string, { target: AliasTarget; local: string | null }>();
  const addLeaf = (target: AliasTarget, local: string | null): void => {
    const key = local !== null ? `local:${local}` : `${target.kind}:${JSON.stringify(target)}`;
    if (!leaves.has(key)) leaves.set(key, { target, local });
  };
  const inProgress = new Set<string>();
  const done = new Set<string>();

  const expand = (entry: AliasEntry, depth: number): void => {
    inProgress.add(entry.name);
    for (const target of entry.targets) {
      if (target.kind !== 'address') {
        addLeaf(target, null);
        continue;
      }
      const local = localNameOf(target.address, isLocalDomain);
      if (local === null) {
        addLeaf(target, null);
        continue;
      }
      const next = target.literal || inProgress.has(local) ? null : table.lookup(local);
      if (next === null) addLeaf({ kind: 'address', address: local, literal: true }, local);
      else if (done.has(next.name))
        continue; // its leaves are in already
      else if (depth >= MAX_ALIAS_DEPTH)
        addLeaf(target, null); // too deep: never a single user
      else expand(next, depth + 1);
    }
    inProgress.delete(entry.name);
    done.add(entry.name);
  };
  expand(start, 1);

  const all = [...leaves.values()];
  const only = all.length === 1 ? all[0] : undefined;
  if (only !== undefined && only.local !== null && (await isLocalUser(only.local)))
    return { kind: 'user', user: only.local };
  return { kind: 'multiple', targets: all.map((leaf) => leaf.target) };
}
