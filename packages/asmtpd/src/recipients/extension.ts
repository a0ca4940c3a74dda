/**
 * extension.ts — the user and the address extension of a local part (qmail style), and what a
 * DomainFile domain makes of its local parts.
 *
 *   splitExtension(local, separator)             -> {user, extension}
 *   applyDomainFile(localPart, entry, separator) -> {user, extension}
 *   extensionSeparator(separator)                -> the character that joins and splits extensions
 *
 * `Bob+Lists+X` with Separator `+` is user `bob` and extension `Lists+X`: split at the FIRST
 * separator; the user part is lower-cased (accounts are looked up lower-cased), the extension is
 * kept as written (EXTENSION shows it as the client sent it; script names are case-sensitive).
 * A separator in first position does not split (`+x` stays a user name, so it is unknown rather
 * than user "" with an extension); a trailing one gives the empty extension (`bob+` → "", which
 * names no script: policy/lookup.ts answers invalid, the caller 550 5.1.1). No Separator → no split.
 *
 * DomainFile (domains.ts): with `example.net bob+net`, `Anything@example.net` is user `bob` with
 * extension `net+Anything`, joined by the Separator — or by `+` when no Separator is set: a
 * virtual domain only works through extensions, so DomainFile gives them even then, and the same
 * `+` then names the scripts (callers pass extensionSeparator(config.separator) to
 * scriptCandidates()). The whole local part goes into the extension, separators included.
 *
 * Pass the local part unquoted (address.ts unquoteLocal) and already checked for routing
 * characters (route.ts).
 */
import type { DomainEntry } from './domains.js';

export interface UserAndExtension {
  /** the account name to look up, lower-case */
  user: string;
  /** as written; null = no extension (not the same as "": `bob+`) */
  extension: string | null;
}

/** Joins and splits extensions when no Separator is set but a DomainFile made one. */
export const DEFAULT_EXTENSION_SEPARATOR = '+';

/** The character extensions are split at for script lookup: the Separator, else `+`. */
export function extensionSeparator(separator: string | null): string {
  return separator ?? DEFAULT_EXTENSION_SEPARATOR;
}

/** user[SEP extension] → user (lower-case) and extension (as written). */
export function splitExtension(local: string, separator: string | null): UserAndExtension {
  if (separator === null || separator === '') return { user: local.toLowerCase(), extension: null };
  const at = local.indexOf(separator);
  if (at <= 0) return { user: local.toLowerCase(), extension: null };
  return { user: local.slice(0, at).toLowerCase(), extension: local.slice(at + separator.length) };
}

/** anything@domain with `domain user[+prefix]` → user, extension [prefix SEP]anything. */
export function applyDomainFile(localPart: string, entry: DomainEntry, separator: string | null): UserAndExtension {
  const sep = extensionSeparator(separator);
  return { user: entry.user, extension: entry.prefix === null ? localPart : `${entry.prefix}${sep}${localPart}` };
}
