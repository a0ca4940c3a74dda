/**
 * auth-file.ts — the AuthFile: a Dovecot passwd-file of SMTP AUTH users, parsed (the hashes are
 * verified in auth/, which re-reads the file when it changes; --check reports its bad lines).
 *
 *   parseAuthFile(text, file) -> FileParse<AuthTable>   bad lines are issues, and skipped
 *   checkAuthFile(path) -> problems (`FILE:LINE: message`), for the directive's file check
 *
 * Lines (Dovecot's passwd-file, doc.dovecot.org "Passwd-file"): `user:password[:uid:gid:gecos:home:
 * shell:extra]`; only the first two fields are read. Empty lines and lines starting with `#` are
 * skipped. The password is `{SCHEME}hash` or a bare crypt(3) string (Dovecot's default scheme CRYPT):
 *
 *   {SHA512-CRYPT}$6$…   {BLF-CRYPT}$2y$… ($2b$, $2a$)   {ARGON2ID}$argon2id$…   {ARGON2I}$argon2i$…
 *   {CRYPT}… or bare: one of those crypt strings, told apart by its prefix
 *   {CRAM-MD5}<64 hex>   Dovecot's CRAM-MD5 scheme (`doveadm pw -s CRAM-MD5`): AUTH CRAM-MD5, and
 *                        PLAIN/LOGIN too (auth/cram-md5.ts); {PLAIN}secret: the secret itself
 *
 * Anything else — another scheme ({SSHA}, {MD5-CRYPT}…), DES or MD5 crypt, a hash that is not
 * of its scheme's form — is an issue: --check fails on it, the daemon skips the line and logs it.
 * Only {CRAM-MD5} and {PLAIN} entries can answer AUTH CRAM-MD5 (AuthCramMD5): a crypt hash cannot.
 * User names compare in lower case (Dovecot's default auth_username_format %Lu); the first line of
 * a user wins, a second is an issue.
 */
import type { ConfigIssue } from './issues.js';
import type { FileParse } from './reloading-file.js';
import { readDataFile } from './reloading-file.js';

/** How a hash is verified (auth/password-hash.ts). */
export type HashKind = 'sha512-crypt' | 'bcrypt' | 'argon2' | 'cram-md5' | 'plain';

export interface AuthEntry {
  /** the user name as written in the file */
  user: string;
  kind: HashKind;
  /** the crypt string, without the {SCHEME} prefix */
  hash: string;
}

/** lower-cased user name → entry */
export type AuthTable = ReadonlyMap<string, AuthEntry>;

export const AUTH_SCHEMES = ['SHA512-CRYPT', 'BLF-CRYPT', 'ARGON2ID', 'ARGON2I', 'CRYPT', 'CRAM-MD5', 'PLAIN'] as const;

const FORMS: readonly { kind: HashKind; scheme: string; pattern: RegExp }[] = [
  { kind: 'sha512-crypt', scheme: 'SHA512-CRYPT', pattern: /^\$6\$(rounds=\d+\$)?[^$:]{0,16}\$[./0-9A-Za-z]{86}$/ },
  { kind: 'bcrypt', scheme: 'BLF-CRYPT', pattern: /^\$2[aby]\$\d\d\$[./0-9A-Za-z]{53}$/ },
  {
    kind: 'argon2',
    scheme: 'ARGON2ID',
    pattern: /^\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
  },
  {
    kind: 'argon2',
    scheme: 'ARGON2I',
    pattern: /^\$argon2i\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
  },
  { kind: 'cram-md5', scheme: 'CRAM-MD5', pattern: /^[0-9a-fA-F]{64}$/ },
  // the secret as written (not empty; a passwd-file field has no ':')
  { kind: 'plain', scheme: 'PLAIN', pattern: /^.+$/ },
];

/** The entry's kind, or why the password field is not one we verify. */
export function parsePasswordField(field: string): { kind: HashKind; hash: string } | { error: string } {
  const m = /^\{([^}]*)\}(.*)$/.exec(field);
  const scheme = m ? m[1]!.toUpperCase() : 'CRYPT';
  const hash = m ? m[2]! : field;
  if (!(AUTH_SCHEMES as readonly string[]).includes(scheme))
    return { error: `unknown password scheme {${m ? m[1] : ''}} (supported: ${AUTH_SCHEMES.join(', ')})` };
  const form = FORMS.find(
    (f) =>
      (scheme === 'CRYPT' ? f.scheme !== 'CRAM-MD5' && f.scheme !== 'PLAIN' : f.scheme === scheme) &&
      f.pattern.test(hash),
  );
  if (form) return { kind: form.kind, hash };
  if (hash === '') return { error: 'empty password' };
  return {
    error:
      scheme === 'CRYPT'
        ? 'not a SHA512-CRYPT ($6$), BLF-CRYPT ($2y$) or ARGON2 ($argon2id$) crypt string (DES and MD5 crypt are not accepted)'
        : `not a ${scheme} hash`,
  };
}

export function parseAuthFile(text: string, file: string): FileParse<AuthTable> {
  const table = new Map<string, AuthEntry>();
  const issues: ConfigIssue[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const at = (message: string): void => void issues.push({ file, line: i + 1, message });
    const colon = line.indexOf(':');
    if (colon <= 0) return at('not a `user:{SCHEME}hash` line');
    const user = line.slice(0, colon);
    const rest = line.slice(colon + 1);
    // the password ends at the next ':' (the uid field), but a crypt string has no ':' in it
    const field = rest.split(':')[0]!;
    const parsed = parsePasswordField(field);
    if ('error' in parsed) return at(`${user}: ${parsed.error}`);
    const key = user.toLowerCase();
    if (table.has(key)) return at(`${user}: given twice (the first line counts)`);
    table.set(key, { user, kind: parsed.kind, hash: parsed.hash });
  });
  return { value: table, issues };
}

/** The AuthFile's problems as `Directive: …` completions (--check and startup): unreadable, bad lines. */
export function checkAuthFile(path: string): string[] {
  const read = readDataFile(path);
  if (read.kind === 'error') return [`${path}: ${read.message}`];
  return parseAuthFile(read.text, path).issues.map((i) => `${i.file}:${i.line}: ${i.message}`);
}
