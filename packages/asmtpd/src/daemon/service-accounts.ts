/**
 * service-accounts.ts — the three accounts a daemon started as root works with (docs/security.md):
 *
 *   DaemonUser   (asmtpd)      the SMTP process after start; owns DBDir and HoldQueue; runs no script
 *   AvengerUser  (avenger)     the system scripts (EtcDir unknown/relay/default), root's policy, redirects
 *   NetFactsUser (asmtpd-net)  the network-facts process, with CAP_NET_RAW and nothing else
 *
 *   serviceAccounts(config, deps?) -> {kind: 'ok', accounts, created} | {kind: 'error', message}
 *
 * Each is looked up in PasswdFile, then the system database. An account missing under its default
 * name is created as a system account (useradd --system, no login shell; AvengerUser gets a home
 * in /var/lib/avenger for its scripts' state), as a package's install script would; an account
 * the administrator named is never created. Refused: uid or gid 0, nobody (65534, shared with
 * other services), and any two of the three sharing a uid (scripts must never run as the SMTP
 * process: they could signal it or write its DBDir).
 */
import { execFile } from 'node:child_process';
import { NOBODY_UID, createAccounts, withSystemFallback, type Account, type Accounts } from '../recipients/accounts.js';
import type { Config } from '../config/types.js';
import { DIRECTIVES } from '../config/directives.js';

export interface ServiceAccounts {
  daemon: Account;
  avenger: Account;
  netFacts: Account;
}

export type ServiceAccountsResult =
  | { kind: 'ok'; accounts: ServiceAccounts; created: string[] }
  | { kind: 'error'; message: string };

interface Role {
  key: keyof ServiceAccounts;
  directive: 'DaemonUser' | 'AvengerUser' | 'NetFactsUser';
  name: string;
  home: string | null;
}

export interface AccountDeps {
  accounts?: Accounts;
  /** creates a system account (default: useradd) */
  create?: (name: string, home: string | null) => Promise<void>;
}

const USERADD = '/usr/sbin/useradd';

/** The directive's default account name (its documented default is the name itself). */
function defaultOf(directive: string): string | undefined {
  return DIRECTIVES.find((d) => d.name === directive)?.defaultText;
}

export async function serviceAccounts(config: Config, deps: AccountDeps = {}): Promise<ServiceAccountsResult> {
  const accounts =
    deps.accounts ?? (config.passwdFile ? withSystemFallback(createAccounts(config.passwdFile)) : createAccounts(null));
  const create = deps.create ?? createSystemAccount;
  const roles: Role[] = [
    { key: 'daemon', directive: 'DaemonUser', name: config.daemonUser, home: null },
    { key: 'avenger', directive: 'AvengerUser', name: config.avengerUser, home: '/var/lib/avenger' },
    { key: 'netFacts', directive: 'NetFactsUser', name: config.netFactsUser, home: null },
  ];
  const found: Partial<ServiceAccounts> = {};
  const created: string[] = [];
  for (const role of roles) {
    let account = await accounts.lookup(role.name);
    if (!account && role.name === defaultOf(role.directive)) {
      try {
        await create(role.name, role.home);
      } catch (err) {
        // another daemon starting at the same moment may have created it: look again
        account = await lookupAgain(role.name);
        if (!account)
          return {
            kind: 'error',
            message: `${role.directive} ${role.name} does not exist and could not be created: ${(err as Error).message}`,
          };
      }
      account ??= await lookupAgain(role.name);
      if (account) created.push(role.name);
    }
    if (!account) {
      return {
        kind: 'error',
        message: `${role.directive} ${role.name} does not exist (create it, e.g. useradd --system --user-group --shell /usr/sbin/nologin ${role.name}, or name another account)`,
      };
    }
    const problem = unfit(account);
    if (problem) return { kind: 'error', message: `${role.directive} ${role.name} ${problem}` };
    found[role.key] = account;
  }
  const all = found as ServiceAccounts;
  for (const [a, b] of [
    ['daemon', 'avenger'],
    ['daemon', 'netFacts'],
    ['avenger', 'netFacts'],
  ] as const) {
    if (all[a].uid === all[b].uid) {
      return {
        kind: 'error',
        message: `${directiveOf(a)} and ${directiveOf(b)} must be different accounts (both are uid ${all[a].uid})`,
      };
    }
  }
  return { kind: 'ok', accounts: all, created };
}

function directiveOf(key: keyof ServiceAccounts): string {
  return key === 'daemon' ? 'DaemonUser' : key === 'avenger' ? 'AvengerUser' : 'NetFactsUser';
}

function unfit(a: Account): string | null {
  if (a.uid === 0 || a.gid === 0) return 'must not be root';
  if (a.uid === NOBODY_UID || a.gid === NOBODY_UID)
    return 'must not be nobody (shared with other services): use an account of its own';
  return null;
}

/** The system database, freshly (the cached answer said "missing" a moment ago). */
function lookupAgain(name: string): Promise<Account | null> {
  return createAccounts(null).lookup(name);
}

function createSystemAccount(name: string, home: string | null): Promise<void> {
  const args = [
    '--system',
    '--user-group',
    '--shell',
    '/usr/sbin/nologin',
    '--comment',
    `asmtpd ${name}`,
    ...(home ? ['--home-dir', home, '--create-home'] : ['--home-dir', '/nonexistent', '--no-create-home']),
    name,
  ];
  return new Promise((resolve, reject) => {
    const attempt = (n: number): void => {
      execFile(
        USERADD,
        args,
        { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, timeout: 30_000 },
        (err, _out, stderr) => {
          if (!err) return resolve();
          // 10: /etc/passwd is locked by another useradd (tests start daemons side by side)
          if ((err as { code?: unknown }).code === 10 && n < 50)
            return void setTimeout(() => attempt(n + 1), 100 + Math.random() * 200);
          reject(new Error(stderr.trim() || err.message));
        },
      );
    };
    attempt(0);
  });
}
