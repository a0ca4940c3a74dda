/**
 * privileges.ts — the SMTP-facing process gives up root for good (STYLE.md, Postfix's lesson).
 *
 *   dropPrivileges(account) -> {kind: 'dropped', account} | {kind: 'error', message}
 *
 * Called once the daemon (root) has checked its accounts (service-accounts.ts), made its
 * directories ready (state-dirs.ts), started the script runner and the network-facts process and
 * bound its ports: supplementary groups become [gid], then setgid, setuid to DaemonUser. Nothing
 * is chowned here. After it the kernel marks the process non-dumpable, so not even another
 * process of DaemonUser can read its memory or descriptors.
 */
import type { Account } from '../recipients/accounts.js';

export type PrivilegeResult = { kind: 'dropped'; account: Account } | { kind: 'error'; message: string };

export function dropPrivileges(account: Account): PrivilegeResult {
  try {
    process.setgroups!([account.gid]);
    process.setgid!(account.gid);
    process.setuid!(account.uid);
  } catch (err) {
    return { kind: 'error', message: `cannot become ${account.name}: ${(err as Error).message}` };
  }
  if (process.getuid!() !== account.uid || process.geteuid!() !== account.uid || process.getegid!() !== account.gid) {
    return { kind: 'error', message: `still not ${account.name} after setuid` };
  }
  return { kind: 'dropped', account };
}
