/**
 * runner-settings.ts — the script runner's settings, from a configuration and the uids root
 * resolved at start (the runner computes them itself: daemon/runner-process.ts).
 *
 *   runnerSettings(config, ids, {bodyTests}) -> RunnerSettings   (bodyTests false: no spool
 *       directory, as for --avenge, which runs no body test)
 *   runnerIds(accounts | null) -> RunnerIds
 *
 * envNames is the table of script variables (policy/variables.ts) and the helpers' DNS settings:
 * the only names a request may set. The helpers' node binary and script are fixed here, so no
 * request can make a user's `spf` run another program; toolsDir (TOOLS_DIR) puts the utilities
 * of docs/utilities.md first on the scripts' PATH.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunnerSettings } from '@asmtpd/avenger-runner';
import type { Config } from '../config/types.js';
import { SCRIPT_VARIABLES } from '../policy/variables.js';
import { HELPER_PATH } from './script-helper-env.js';
import type { ServiceAccounts } from './service-accounts.js';

/** The uids root resolved at start: the SMTP process's, and the others that never run scripts. */
export interface RunnerIds {
  daemonUid: number | null;
  deniedUids: number[];
}

export function runnerIds(accounts: ServiceAccounts | null): RunnerIds {
  return accounts
    ? { daemonUid: accounts.daemon.uid, deniedUids: [accounts.netFacts.uid] }
    : { daemonUid: null, deniedUids: [] };
}

/** The scripts' utilities (packages/asmtpd/tools: dbutil, deliver, synos, …), first on their PATH. */
export const TOOLS_DIR = fileURLToPath(new URL('../../tools', import.meta.url));

/** Helper variables that are data (the DNS settings), not program paths. */
const HELPER_DATA = ['ASMTPD_DNS'];

export function runnerSettings(
  config: Config,
  ids: RunnerIds,
  o: { bodyTests: boolean } = { bodyTests: true },
): RunnerSettings {
  return {
    etcDir: config.etcDir,
    avengerUser: config.avengerUser,
    passwdFile: config.passwdFile,
    spoolDir: o.bodyTests ? join(config.dbDir, 'spool') : null,
    daemonUid: ids.daemonUid,
    deniedUids: ids.deniedUids,
    envNames: [...SCRIPT_VARIABLES.map((v) => v.name), ...HELPER_DATA],
    fixedEnv: { ASMTPD_NODE: process.execPath, ASMTPD_HELPER: HELPER_PATH },
    toolsDir: TOOLS_DIR,
    limits: {
      processes: config.avengerProcessLimit,
      cpuSeconds: Math.ceil(config.avengerCpuLimitMs / 1000),
      dataBytes: config.avengerMemoryLimitBytes,
      fileBytes: config.avengerFileSizeLimitBytes,
      openFiles: config.avengerOpenFilesLimit,
    },
  };
}
