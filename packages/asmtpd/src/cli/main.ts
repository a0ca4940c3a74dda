/**
 * main.ts — entry point of bin/asmtpd: dispatch to the mode's run(), then exit with its code.
 * The daemon (daemon.ts) also exits by itself: 1 when the script runner dies before it serves,
 * and 0 200 ms after a clean stop should the exit below not have come first.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 * Its first import neutralises SIGUSR1 (Node's inspector), before anything else is loaded.
 */
import '@asmtpd/avenger-runner/no-inspector';
import { parseArgs, USAGE } from './args.js';
import { runCheck } from './check.js';
import { runDaemon, loadForCommand } from './daemon.js';
import { runAvenge } from './avenge.js';
import { runVerify } from './verify.js';
import { runBlocklist } from './blocklist.js';
import { runSpf } from './spf.js';
import { runRbl } from './rbl.js';
import { runNetpath } from './netpath.js';
import { runSynfp } from './synfp.js';
import { runInstallEtc } from './install-etc.js';
import { runQueue } from './queue.js';
import type { Config } from '../config/types.js';
import { formatIssue } from '../config/load.js';
import { VERSION } from '../version.js';

export async function main(argv: readonly string[]): Promise<number> {
  const cmd = parseArgs(argv);
  switch (cmd.mode) {
    case 'usage-error':
      process.stderr.write(`asmtpd: ${cmd.message}\n${USAGE}\n`);
      return 2;
    case 'help':
      process.stdout.write(USAGE + '\n');
      return 0;
    case 'version':
      process.stdout.write(`asmtpd ${VERSION}\n`);
      return 0;
    case 'check':
      return runCheck(cmd.file, process.stdout, cmd.fileGiven);
    case 'daemon':
      return runDaemon(cmd);
    case 'avenge':
      return withConfig(cmd, (config) => runAvenge(config, cmd, process.stdout));
    case 'verify':
      return withConfig(cmd, (config) => runVerify(config, cmd.address, process.stdout));
    case 'blocklist':
      return withConfig(cmd, (config) => runBlocklist(config, cmd.args, process.stdout));
    case 'spf':
      return withConfig(cmd, (config) => runSpf(config, process.stdin, process.stdout, process.stderr));
    case 'rbl':
      return withConfig(cmd, (config) => runRbl(config, process.stdin, process.stdout, process.stderr));
    case 'netpath':
      return runNetpath(cmd, process.stdout, process.stderr);
    case 'synfp':
      return withConfig(cmd, (config) => runSynfp(cmd, config, process.stdout, process.stderr));
    case 'install-etc':
      return runInstallEtc(cmd.dir, process.stdout, process.stderr);
    case 'queue':
    case 'hold':
    case 'release':
    case 'flush':
      return withConfig(cmd, (config) => runQueue(config, cmd, process.stdout));
  }
}

/** Load the configuration (or the embedded default) for a command; exit 2 when it is broken. */
function withConfig(
  cmd: { file: string; fileGiven: boolean },
  run: (config: Config) => Promise<number>,
): Promise<number> {
  const { result } = loadForCommand(cmd);
  if (result.kind === 'error') {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    return Promise.resolve(2);
  }
  return run(result.config);
}

main(process.argv.slice(2)).then(
  (code) => {
    // every mode is done here (the daemon resolves once it has stopped): exit once stdout is flushed
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`asmtpd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
