/*
 * accounts — local accounts from a passwd(5)-format file or the system database, and the rule
 * for which of them may run scripts.
 *
 * SUMMARY
 *   createAccounts(passwdFile | null) → Accounts { lookup(name), groups(account) }
 *       A PasswdFile (virtual users, tests) is re-read when its mtime changes; its accounts get
 *       [gid] as groups. The system database is asked through `/usr/bin/getent passwd NAME` and
 *       `getent initgroups NAME` (NSS: files, LDAP, sssd… as the host is set up; Node has no
 *       getpwnam), cached for a minute. Names are looked up lower-cased, as Postfix's local(8).
 *   withSystemFallback(accounts) → Accounts   PasswdFile first, then the system database (for
 *       AvengerUser, usually a system account).
 *   runnableProblem(account, groups, rule) → string | null   why scripts must not run as it.
 *   readUidMin() → UID_MIN of /etc/login.defs (1000 when unset).
 *
 * SECURITY
 *   Used by the runner (root) to resolve accounts itself: the SMTP side names an account, never
 *   a uid. getent runs by absolute path with an environment of PATH only. An account may run
 *   scripts only if it is not uid 0, not gid 0 and in no group 0, not `nobody` (65534, shared by
 *   every service that runs as it), not one of asmtpd's own accounts, and either an ordinary
 *   account (uid >= UID_MIN) or AvengerUser itself.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { SAFE_PATH } from './protocol.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface Accounts {
  lookup(name: string): Promise<Account | null>;
  /** supplementary groups for running as this account (as initgroups(3) gives them, gid first) */
  groups(account: Account): Promise<number[]>;
}

export const GETENT_PATH = '/usr/bin/getent';
/** nobody/nogroup on Debian: shared by unrelated services, never an owner of anything */
export const NOBODY_UID = 65534;
const LOOKUP_TTL_MS = 60_000;
const NAME = /^[a-z_][a-z0-9_.-]*\$?$/;

export function parsePasswdLine(line: string): Account | null {
  const f = line.split(':');
  if (f.length < 7 || !f[0] || line.startsWith('#')) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (f[2] === '' || f[3] === '' || !Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0) return null;
  return { name: f[0], uid, gid, gecos: f[4] ?? '', home: f[5] ?? '', shell: f[6] ?? '' };
}

export function createAccounts(passwdFile: string | null): Accounts {
  return passwdFile ? passwdFileAccounts(passwdFile) : systemAccounts();
}

export function withSystemFallback(primary: Accounts): Accounts {
  const system = systemAccounts();
  return {
    async lookup(name) {
      return (await primary.lookup(name)) ?? (await system.lookup(name));
    },
    async groups(account) {
      return (await primary.lookup(account.name))?.uid === account.uid
        ? primary.groups(account)
        : system.groups(account);
    },
  };
}

function passwdFileAccounts(file: string): Accounts {
  let mtimeMs = -1;
  let byName = new Map<string, Account>();
  const refresh = (): void => {
    const st = statSync(file);
    if (st.mtimeMs === mtimeMs) return;
    const next = new Map<string, Account>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const a = parsePasswdLine(line.trim());
      if (a && !next.has(a.name)) next.set(a.name, a);
    }
    byName = next;
    mtimeMs = st.mtimeMs;
  };
  return {
    async lookup(name) {
      refresh();
      return byName.get(name.toLowerCase()) ?? null;
    },
    async groups(account) {
      return [account.gid];
    },
  };
}

function getent(database: 'passwd' | 'initgroups', name: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    execFile(GETENT_PATH, [database, name], { timeout: 5000, env: { PATH: SAFE_PATH } }, (err, stdout) => {
      // getent exits 2 for "not found"; anything else is a failure of the lookup itself
      if (err && (err as { code?: unknown }).code === 2) return resolve(null);
      if (err) return reject(err);
      resolve(stdout);
    });
  });
}

function systemAccounts(): Accounts {
  const cache = new Map<string, { at: number; account: Account | null }>();
  const groupCache = new Map<string, { at: number; groups: number[] }>();
  return {
    async lookup(rawName) {
      const name = rawName.toLowerCase();
      if (!NAME.test(name) || name.length > 32) return null;
      const hit = cache.get(name);
      if (hit && Date.now() - hit.at < LOOKUP_TTL_MS) return hit.account;
      const out = await getent('passwd', name);
      const account = out === null ? null : parsePasswdLine(out.trim().split('\n')[0] ?? '');
      cache.set(name, { at: Date.now(), account });
      return account;
    },
    async groups(account) {
      const hit = groupCache.get(account.name);
      if (hit && Date.now() - hit.at < LOOKUP_TTL_MS) return hit.groups;
      let listed: number[] = [];
      try {
        const out = (await getent('initgroups', account.name)) ?? '';
        listed = out
          .trim()
          .split(/\s+/)
          .slice(1)
          .map(Number)
          .filter((n) => Number.isInteger(n) && n >= 0);
      } catch {
        listed = [];
      }
      const groups = [account.gid, ...listed.filter((g) => g !== account.gid)];
      groupCache.set(account.name, { at: Date.now(), groups });
      return groups;
    },
  };
}

/** What decides whether an account may run scripts (see the header). */
export interface RunnableRule {
  /** UID_MIN: accounts below it are system accounts */
  uidMin: number;
  /** the uid of AvengerUser: the one system account that runs scripts */
  avengerUid: number;
  /** asmtpd's own accounts (the SMTP process, the network-facts process) */
  deniedUids: readonly number[];
}

export function runnableProblem(account: Account, groups: readonly number[], rule: RunnableRule): string | null {
  if (account.uid === 0) return `account ${account.name} is uid 0`;
  if (account.gid === 0 || groups.includes(0)) return `account ${account.name} is in group 0`;
  if (account.uid === NOBODY_UID || account.gid === NOBODY_UID)
    return `account ${account.name} is nobody, shared by other services`;
  if (rule.deniedUids.includes(account.uid)) return `account ${account.name} is one of asmtpd's own`;
  if (account.uid < rule.uidMin && account.uid !== rule.avengerUid)
    return `account ${account.name} is a system account (uid < ${rule.uidMin})`;
  return null;
}

export function readUidMin(file = '/etc/login.defs'): number {
  try {
    const m = /^\s*UID_MIN\s+(\d+)\s*$/m.exec(readFileSync(file, 'utf8'));
    if (m?.[1] !== undefined) return Number(m[1]);
  } catch {
    /* no login.defs: Debian's default */
  }
  return 1000;
}
