/**
 * runtime.ts — everything a session needs that comes from the configuration, built once per
 * (re)load and swapped whole on SIGHUP: sessions already running keep the Runtime they started with.
 */
import type { Config } from '../config/types.js';
import { networkSet, type NetworkSet } from '../net/cidr.js';
import { createAccounts, type Accounts } from '../recipients/accounts.js';
import type { Relay } from '../relay/types.js';

export interface Runtime {
  config: Config;
  localDomains: ReadonlySet<string>;
  relayNets: NetworkSet;
  accounts: Accounts;
  relay: Relay;
}

export function buildRuntime(config: Config, relay: Relay): Runtime {
  return {
    config,
    localDomains: new Set(config.localDomains.map((d) => d.toLowerCase().replace(/\.$/, ''))),
    relayNets: networkSet(config.relayNets),
    accounts: createAccounts(config.passwdFile),
    relay,
  };
}
