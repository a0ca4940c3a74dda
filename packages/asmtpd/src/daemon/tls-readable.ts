/**
 * tls-readable.ts — which of the TLS files the SMTP process could not read after it gave up root.
 * The files are read as root at start, but SIGHUP re-reads them as DaemonUser: a key only root can
 * read would be served until the first renewal, and then every reload would be refused. Checked
 * at start as the account itself (setpriv with its uid, gid and groups, `test -r`), so group
 * membership and ACLs count as the kernel counts them.
 *
 *   unreadableBy(account, paths) -> paths DaemonUser cannot read ([] when it cannot be told)
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const SETPRIV = '/usr/bin/setpriv';

export function unreadableBy(account: { name: string; uid: number; gid: number }, paths: readonly string[]): string[] {
  if (process.getuid?.() !== 0 || !existsSync(SETPRIV)) return [];
  return paths.filter((path) => {
    const r = spawnSync(
      SETPRIV,
      [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--', '/usr/bin/test', '-r', path],
      { stdio: 'ignore', env: { PATH: '/usr/bin:/bin', USER: account.name } },
    );
    return r.status === 1;
  });
}
