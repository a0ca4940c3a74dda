/**
 * address.ts — split and normalise envelope addresses.
 *
 *   splitAddress(addr) -> {local, domain} (domain lower-cased, trailing dot dropped; '' if none)
 *   hasRoutingCharacters(local) -> true for relay tricks: %, !, @ (also inside quotes)
 *
 * Local parts stay as written (they are case-sensitive per RFC 5321); only the domain is folded.
 */
export interface SplitAddress {
  local: string;
  domain: string;
}

/** Index of the last `@` outside a quoted string; -1 when none or the quotes are unbalanced. */
export function lastAtOutsideQuotes(s: string): number {
  let quoted = false;
  let at = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === '@' && !quoted) at = i;
  }
  return quoted ? -1 : at;
}

export function splitAddress(address: string): SplitAddress {
  const at = lastAtOutsideQuotes(address);
  if (at < 0) return { local: address, domain: '' };
  return { local: address.slice(0, at), domain: normalizeDomain(address.slice(at + 1)) };
}

export function normalizeDomain(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

/** The unquoted content of a local part: `"a b"` -> `a b`, `"a\"b"` -> `a"b`. */
export function unquoteLocal(local: string): string {
  if (!(local.startsWith('"') && local.endsWith('"') && local.length >= 2)) return local;
  return local.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Routing characters in a local part: the percent hack, bang paths, embedded `@`. */
export function hasRoutingCharacters(local: string): boolean {
  return /[%!@]/.test(unquoteLocal(local));
}
