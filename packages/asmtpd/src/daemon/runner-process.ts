/**
 * runner-process.ts — asmtpd's entry of the script runner (root): the runner of
 * @asmtpd/avenger-runner, with its settings read from the configuration by the runner itself.
 *
 *   node dist/daemon/runner-process.js --config=FILE --file-given=0|1 [--daemon-uid=N] [--denied-uid=N]…
 *
 * The daemon starts it as root before it gives up root (cli/daemon.ts). Its settings
 * (runner-settings.ts) come from the same configuration the daemon loaded — FILE, or the embedded
 * default when FILE does not exist and was not given — and the uids of DaemonUser and
 * NetFactsUser, which root resolved at start. On the daemon's `reload` (after SIGHUP) it reads
 * the configuration again itself: the SMTP process can ask for a re-read of root's file, never
 * hand the runner a setting.
 */
import '@asmtpd/avenger-runner/no-inspector';
import '@asmtpd/avenger-runner/capability-guard';
import { serveRunner, type RunnerSettings } from '@asmtpd/avenger-runner';
import { loadForCommand } from '../config/source.js';
import { formatIssue } from '../config/load.js';
import { runnerSettings, type RunnerIds } from './runner-settings.js';

function parseArgs(argv: readonly string[]): { file: string; fileGiven: boolean; ids: RunnerIds } {
  let file: string | null = null;
  let fileGiven = false;
  let daemonUid: number | null = null;
  const deniedUids: number[] = [];
  for (const a of argv) {
    const [, key, value = ''] = /^--([a-z-]+)=(.*)$/s.exec(a) ?? [];
    if (key === 'config') file = value;
    else if (key === 'file-given' && (value === '0' || value === '1')) fileGiven = value === '1';
    else if (key === 'daemon-uid' && /^\d+$/.test(value)) daemonUid = Number(value);
    else if (key === 'denied-uid' && /^\d+$/.test(value)) deniedUids.push(Number(value));
    else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (file === null) throw new Error('--config=FILE is required');
  return { file, fileGiven, ids: { daemonUid, deniedUids } };
}

function settingsFrom(args: ReturnType<typeof parseArgs>): RunnerSettings {
  const { result } = loadForCommand(args);
  if (result.kind === 'error') throw new Error(result.errors.map(formatIssue).join('; '));
  return runnerSettings(result.config, args.ids);
}

let args: ReturnType<typeof parseArgs>;
let initial: RunnerSettings;
try {
  args = parseArgs(process.argv.slice(2));
  initial = settingsFrom(args);
} catch (err) {
  process.stderr.write(`avenger-runner[${process.pid}]: ${(err as Error).message}\n`);
  process.exit(2);
}
void serveRunner({ initial, reload: async () => settingsFrom(args) });
