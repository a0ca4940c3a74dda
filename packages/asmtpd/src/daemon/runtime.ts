/**
 * runtime.ts — everything a session needs that comes from the configuration, built once per
 * (re)load and swapped whole on SIGHUP: sessions already running keep the Runtime they started with.
 */
import type { RunRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Config } from '../config/types.js';
import { networkSet, type NetworkSet } from '../net/cidr.js';
import { createAccounts, withSystemFallback, type Account, type Accounts } from '../recipients/accounts.js';
import { createAliasTable, type AliasTable } from '../recipients/aliases.js';
import { createDomainTable, type DomainTable } from '../recipients/domains.js';
import { routeRecipient, type Route } from '../recipients/route.js';
import { normalizeDomain } from '../recipients/address.js';
import type { PolicyDeps } from '../policy/decide.js';
import { createSystemScriptProbe } from '../policy/system-scripts.js';
import type { Relay } from '../relay/types.js';
import type { Logger } from '../log/logger.js';
import { formatIssue } from '../config/load.js';

/** What runs scripts: the runner process (daemon) or the runner in-process (--avenge). */
export type ScriptRunner = (req: RunRequest) => Promise<RunResult>;

export interface Runtime {
  config: Config;
  localDomains: ReadonlySet<string>;
  relayNets: NetworkSet;
  accounts: Accounts;
  aliases: AliasTable | null;
  domains: DomainTable | null;
  relay: Relay;
  policy: PolicyDeps;
  run: ScriptRunner;
  route(address: string, mayRelay: boolean, sourceRoute: boolean): Promise<Route>;
}

export function buildRuntime(config: Config, relay: Relay, run: ScriptRunner, log: Logger): Runtime {
  const onIssues = (issues: readonly { file: string; line: number; message: string }[]): void => {
    for (const i of issues) log.warn('config.error', { warning: formatIssue(i) });
  };
  const accounts = createAccounts(config.passwdFile);
  const avengerAccounts = config.passwdFile ? withSystemFallback(accounts) : accounts;
  const aliases = config.aliasFile ? createAliasTable(config.aliasFile, { onIssues }) : null;
  const domains = config.domainFile ? createDomainTable(config.domainFile, { onIssues }) : null;
  const localDomains = new Set(config.localDomains.map(normalizeDomain));
  const route = (address: string, mayRelay: boolean, sourceRoute: boolean): Promise<Route> =>
    routeRecipient(address, { localDomains, mayRelay, sourceRoute, accounts, separator: config.separator, aliases, domains });
  const policy: PolicyDeps = {
    run,
    avengerAccount: (): Promise<Account | null> => avengerAccounts.lookup(config.avengerUser),
    groupsOf: (a) => avengerAccounts.groups(a),
    route: (address) => route(address, false, false),
    etcDir: config.etcDir,
    systemScriptAbsent: createSystemScriptProbe(config.etcDir),
    separator: config.separator,
    timeoutMs: config.avengerTimeoutMs,
    avengerUser: config.avengerUser,
  };
  return { config, localDomains, relayNets: networkSet(config.relayNets), accounts, aliases, domains, relay, policy, run, route };
}
