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

export function splitAddress(address: string): SplitAddress {
  let quoted = false;
  let at = -1;
  for (let i = 0; i < address.length; i++) {
    const c = address[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === '@' && !quoted) at = i;
  }
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
