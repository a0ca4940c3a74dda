/**
 * glob.ts — shell glob patterns (POSIX.1 2.13.1, what `case` and fnmatch(3) match) as a RegExp,
 * for the `match` utility.
 *
 *   compileGlob(pattern, {nocase?, slash?}) -> {regexp, stars}
 *     *        any string (a capture group: -n N of match prints what the Nth `*` matched)
 *     ?        any one character
 *     [...]    one character of the set: ranges a-z, classes [:alpha:] [:digit:] [:alnum:]
 *              [:lower:] [:upper:] [:space:] [:blank:] [:punct:] [:xdigit:] [:cntrl:] [:print:]
 *              [:graph:]; [!...] the complement ([^...] is a set holding ^, as in dash); a `]`
 *              first in the set is itself; a `[` without its `]` is an ordinary character; a
 *              reversed range (z-a) is empty; an unknown class ([:nosuch:]) is characters of the set
 *     \c       the character c itself
 *   The whole string must match. Without `slash`, `*`, `?` and sets never match a `/` (Mail
 *   Avenger's match; `case` matches it: slash true). nocase: letters match either case.
 *   Characters are Unicode code points: `?` matches `é` whole (as bash does in a UTF-8 locale;
 *   dash, which knows only bytes, needs `??`).
 *
 * No library: the glob matchers on npm (minimatch, picomatch, micromatch) match paths, with brace
 * expansion, `**`, extglobs and a leading `!` for negation, none of which a `case` pattern has;
 * what a script's pattern means is what sh means by it, checked against dash in glob.test.ts.
 */

export interface GlobOptions {
  nocase?: boolean;
  slash?: boolean;
}

export interface CompiledGlob {
  regexp: RegExp;
  /** the number of `*` (capture groups, in order) */
  stars: number;
}

const CLASSES: Readonly<Record<string, string>> = {
  alpha: 'A-Za-z',
  digit: '0-9',
  alnum: 'A-Za-z0-9',
  lower: 'a-z',
  upper: 'A-Z',
  space: ' \\t\\n\\r\\f\\v',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  xdigit: '0-9A-Fa-f',
  cntrl: '\\x00-\\x1f\\x7f',
  print: '\\x20-\\x7e',
  graph: '\\x21-\\x7e',
};

const escapeOutside = (c: string): string => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const escapeInside = (c: string): string => c.replace(/[\\\]\[^-]/g, '\\$&');

export function compileGlob(pattern: string, o: GlobOptions = {}): CompiledGlob {
  const chars = Array.from(pattern);
  const any = o.slash ? '.' : '[^/]';
  let out = '';
  let stars = 0;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      // a trailing backslash stands for itself
      out += escapeOutside(chars[i + 1] ?? '\\');
      i++;
    } else if (c === '*') {
      out += `(${any}*)`;
      stars++;
    } else if (c === '?') {
      out += any;
    } else if (c === '[') {
      const set = bracket(chars, i + 1, o.slash === true);
      if (set === null) out += '\\[';
      else {
        out += set.regexp;
        i = set.end;
      }
    } else {
      out += escapeOutside(c);
    }
  }
  return { regexp: new RegExp(`^(?:${out})$`, `su${o.nocase ? 'i' : ''}`), stars };
}

/** The set starting after `[` at start: its RegExp and the index of its `]`, or null (no `]`). */
function bracket(chars: string[], start: number, slash: boolean): { regexp: string; end: number } | null {
  let i = start;
  let negate = false;
  // "[^" is unspecified in POSIX: dash (Debian's sh) takes the ^ as a character, so do we
  if (chars[i] === '!') {
    negate = true;
    i++;
  }
  const items: string[] = [];
  let first = true;
  for (; i < chars.length; i++, first = false) {
    let c = chars[i]!;
    if (c === ']' && !first) {
      const body = items.join('');
      // a set never matches "/" without the slash option (fnmatch's FNM_PATHNAME)
      if (negate) return { regexp: `[^${body}${slash ? '' : '\\/'}]`, end: i };
      if (body === '') return { regexp: '(?!)', end: i };
      return { regexp: slash ? `[${body}]` : `(?!\\/)[${body}]`, end: i };
    }
    if (c === '[' && chars[i + 1] === ':') {
      const close = chars.indexOf(':', i + 2);
      if (close > 0 && chars[close + 1] === ']') {
        const name = chars.slice(i + 2, close).join('');
        const cls = CLASSES[name];
        // an unknown class is no class: its "[" is one more character of the set (as in dash)
        if (cls !== undefined) {
          items.push(cls);
          i = close + 1;
          continue;
        }
      }
    }
    if (c === '\\' && i + 1 < chars.length) c = chars[++i]!;
    // a range c-d (a "-" first or last is itself)
    if (chars[i + 1] === '-' && chars[i + 2] !== undefined && chars[i + 2] !== ']') {
      let d = chars[i + 2]!;
      let skip = 2;
      if (d === '\\' && chars[i + 3] !== undefined) {
        d = chars[i + 3]!;
        skip = 3;
      }
      // a reversed range matches nothing (glibc, dash)
      if (c.codePointAt(0)! <= d.codePointAt(0)!) items.push(`${escapeInside(c)}-${escapeInside(d)}`);
      i += skip;
      continue;
    }
    items.push(escapeInside(c));
  }
  return null;
}
