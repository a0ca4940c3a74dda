/**
 * accounts.ts — look up local accounts: a passwd(5)-format PasswdFile, or the system database.
 *
 *   createAccounts(passwdFile | null) -> Accounts { lookup(name) -> Account | null }
 *
 * The PasswdFile is re-read when its mtime changes. The system database is asked through
 * `getent passwd NAME` (NSS: files, LDAP, sssd… as the host is set up), cached for a minute,
 * because Node has no getpwnam. Names are looked up lower-cased, as Postfix's local(8) does.
 */
import { readFileSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';

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
  /** supplementary groups for running as this account (initgroups); PasswdFile accounts: [gid] */
  groups(account: Account): Promise<number[]>;
}

const NAME = /^[a-z_][a-z0-9_.-]*\$?$/;

export function parsePasswdLine(line: string): Account | null {
  const f = line.split(':');
  if (f.length < 7 || !f[0] || line.startsWith('#')) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0], uid, gid, gecos: f[4] ?? '', home: f[5] ?? '', shell: f[6] ?? '' };
}

export function createAccounts(passwdFile: string | null): Accounts {
  return passwdFile ? passwdFileAccounts(passwdFile) : systemAccounts();
}

/** PasswdFile first, then the system database: for AvengerUser, often a system account. */
export function withSystemFallback(primary: Accounts): Accounts {
  const system = systemAccounts();
  return {
    async lookup(name) {
      return (await primary.lookup(name)) ?? (await system.lookup(name));
    },
    async groups(account) {
      return (await primary.lookup(account.name))?.uid === account.uid ? primary.groups(account) : system.groups(account);
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

function systemAccounts(): Accounts {
  const cache = new Map<string, { at: number; account: Account | null }>();
  const groupCache = new Map<string, { at: number; groups: number[] }>();
  const TTL_MS = 60_000;
  return {
    async lookup(rawName) {
      const name = rawName.toLowerCase();
      if (!NAME.test(name) || name.length > 32) return null;
      const hit = cache.get(name);
      if (hit && Date.now() - hit.at < TTL_MS) return hit.account;
      const account = await new Promise<Account | null>((resolve, reject) => {
        execFile('getent', ['passwd', name], { timeout: 5000 }, (err, stdout) => {
          // getent exits 2 for "not found"; anything else is a lookup failure
          if (err && (err as { code?: unknown }).code === 2) return resolve(null);
          if (err) return reject(err);
          resolve(parsePasswdLine(stdout.trim().split('\n')[0] ?? ''));
        });
      });
      cache.set(name, { at: Date.now(), account });
      return account;
    },
    async groups(account) {
      const hit = groupCache.get(account.name);
      if (hit && Date.now() - hit.at < TTL_MS) return hit.groups;
      const groups = await new Promise<number[]>((resolve) => {
        execFile('id', ['-G', account.name], { timeout: 5000 }, (err, stdout) => {
          const ids = err ? [] : stdout.trim().split(/\s+/).map(Number).filter((n) => Number.isInteger(n));
          resolve(ids.includes(account.gid) ? ids : [account.gid, ...ids]);
        });
      });
      groupCache.set(account.name, { at: Date.now(), groups });
      return groups;
    },
  };
}
