/**
 * accounts.ts — local accounts: a passwd(5)-format PasswdFile, or the system database.
 *
 *   createAccounts(passwdFile | null) -> Accounts { lookup(name) -> Account | null, groups(account) }
 *   withSystemFallback(accounts) -> Accounts     PasswdFile first, then the system database
 *
 * One implementation, shared with the script runner (which resolves accounts itself: it never
 * takes a uid from this process): @asmtpd/avenger-runner's accounts.ts. PasswdFile is re-read
 * when its mtime changes; the system database is asked through getent, cached for a minute.
 */
export {
  createAccounts,
  withSystemFallback,
  parsePasswdLine,
  NOBODY_UID,
  type Account,
  type Accounts,
} from '@asmtpd/avenger-runner';
