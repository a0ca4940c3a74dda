/**
 * privileges.ts — the SMTP-facing process gives up root for good (STYLE.md, Postfix's lesson).
 *
 *   dropPrivileges(config) -> PrivilegeResult
 *
 * Started as root, the daemon binds its ports and starts the script runner (which keeps root
 * only to become users), then becomes AvengerUser: DBDir is given to that account, supplementary
 * groups are cleared, then setgid, setuid. AvengerUser is looked up in PasswdFile first, then in
 * the system database; a missing account or one with uid 0 is a startup error.
 * Started as a user, nothing changes: scripts run as that user (the log says so once).
 */
import { chownSync, readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { createAccounts, withSystemFallback, type Account } from '../recipients/accounts.js';

export type PrivilegeResult =
  | { kind: 'dropped'; account: Account }
  | { kind: 'unprivileged'; uid: number }
  | { kind: 'error'; message: string };

export async function dropPrivileges(config: Config): Promise<PrivilegeResult> {
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return { kind: 'unprivileged', uid };
  const base = createAccounts(config.passwdFile);
  const accounts = config.passwdFile ? withSystemFallback(base) : base;
  const account = await accounts.lookup(config.avengerUser);
  if (!account) return { kind: 'error', message: `AvengerUser ${config.avengerUser} does not exist (create it, e.g. useradd --system --home-dir /var/spool/avenger avenger, or set AvengerUser)` };
  if (account.uid === 0 || account.gid === 0) return { kind: 'error', message: `AvengerUser ${config.avengerUser} must not be root` };
  try {
    chownTree(config.dbDir, account.uid, account.gid);
    if (!config.holdQueue.startsWith(config.dbDir + '/')) chownTree(config.holdQueue, account.uid, account.gid);
    process.setgroups!([account.gid]);
    process.setgid!(account.gid);
    process.setuid!(account.uid);
  } catch (err) {
    return { kind: 'error', message: `cannot become ${config.avengerUser}: ${(err as Error).message}` };
  }
  return { kind: 'dropped', account };
}

/** chown a directory tree (our own state: small), never following symlinks. */
function chownTree(path: string, uid: number, gid: number): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) return;
  chownSync(path, uid, gid);
  if (st.isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}
