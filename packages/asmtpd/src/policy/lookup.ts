/**
 * lookup.ts — which files in ~/.avenger may hold a recipient's policy (avenger.md §1), qmail
 * style. Pure: it names candidates, the runner looks for the first that exists.
 *
 *   scriptCandidates(extension, separator, base = 'rcpt')
 *     -> {kind: 'ok', candidates: ScriptCandidate[]} | {kind: 'invalid', reason}
 *
 * With separator `+` and base `rcpt`:
 *   no extension (null) → rcpt
 *   a                   → rcpt+a, rcpt+default (DEFAULT=a)
 *   a+b                 → rcpt+a+b, rcpt+a+default (DEFAULT=b), rcpt+default (DEFAULT=a+b)
 *   p1+…+pn             → the full name (no DEFAULT); then for k = n-1 … 1: p1+…+pk+default
 *                         (DEFAULT = p(k+1)+…+pn); then rcpt+default (DEFAULT = the whole extension)
 * File names use the configured separator (the spec writes `+`): with `Separator -`, bob-a-b
 * looks for rcpt-a-b, rcpt-a-default, rcpt-default. A name met twice (an extension that is itself
 * `default`, or ends in `+default`) is listed once, at its first place.
 * `base` serves the other users of the same rule: `local` for avenger.local (local, local+EXT,
 * local+default).
 *
 * SECURITY: the extension comes from the network and becomes a file name. It never names a file
 * (→ invalid; the caller answers 550 5.1.1) when it contains `/` or a control character, when a
 * part starts with `.` (`.hidden`, `..`, `a+..`), when a part is empty (`""`, `a++b`, `a+`), or
 * when a candidate would be over 255 bytes (NAME_MAX).
 */

export interface ScriptCandidate {
  /** a file name inside the script directory, never a path */
  file: string;
  /** DEFAULT for that file: the part of the extension a `default` file stands for; null = unset */
  default: string | null;
}

export type ScriptLookup = { kind: 'ok'; candidates: ScriptCandidate[] } | { kind: 'invalid'; reason: string };

/** Longest file name most file systems accept (bytes). */
export const MAX_SCRIPT_NAME_BYTES = 255;

const CONTROL = /[\x00-\x1f\x7f]/;

/** Why this extension cannot name a file, or null when it can. */
export function invalidExtensionReason(extension: string, separator: string): string | null {
  if (extension.includes('/')) return 'extension contains /';
  if (CONTROL.test(extension)) return 'extension contains a control character';
  const parts = extension.split(separator);
  if (parts.some((p) => p === '')) return 'extension has an empty part';
  if (parts.some((p) => p.startsWith('.'))) return 'extension has a part starting with .';
  return null;
}

/** The files to try, in order, for `extension` (null = none); see the header. */
export function scriptCandidates(extension: string | null, separator: string, base = 'rcpt'): ScriptLookup {
  if (extension === null) return { kind: 'ok', candidates: [{ file: base, default: null }] };
  if (separator.length !== 1 || separator === '/' || separator === '.') {
    return { kind: 'invalid', reason: `separator ${JSON.stringify(separator)} cannot be used in file names` };
  }
  const reason = invalidExtensionReason(extension, separator);
  if (reason !== null) return { kind: 'invalid', reason };
  const full = `${base}${separator}${extension}`;
  const parts = extension.split(separator);
  const list: ScriptCandidate[] = [{ file: full, default: null }];
  for (let k = parts.length - 1; k >= 0; k--) {
    const head = [base, ...parts.slice(0, k), 'default'].join(separator);
    list.push({ file: head, default: parts.slice(k).join(separator) });
  }
  if (list.some((c) => Buffer.byteLength(c.file, 'utf8') > MAX_SCRIPT_NAME_BYTES)) {
    return { kind: 'invalid', reason: 'extension too long for a file name' };
  }
  const firstOfEachName = list.filter((c, index) => list.findIndex((other) => other.file === c.file) === index);
  return { kind: 'ok', candidates: firstOfEachName };
}
