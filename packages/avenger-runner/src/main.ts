/*
 * main — the runner process with fixed settings: `node dist/main.js --settings=JSON`.
 *
 * SUMMARY
 *   Started (usually as root) with its settings on the command line (protocol.ts RunnerSettings:
 *   decided by whoever starts it, never by the pipe); then serve.ts. asmtpd starts its own entry
 *   (asmtpd's daemon/runner-process.ts), which reads its settings from the configuration file
 *   and can reload them; this one is for the package's own tests and other users.
 *
 * SECURITY
 *   SIGUSR1 is neutralised before anything else is loaded (no-inspector.ts).
 */
import './no-inspector.js';
import './capability-guard.js';
import { validateSettings, type RunnerSettings } from './protocol.js';
import { serveRunner } from './serve.js';

function parseArgs(argv: string[]): RunnerSettings {
  const json = argv.length === 1 ? /^--settings=(.*)$/s.exec(argv[0] ?? '')?.[1] : undefined;
  if (json === undefined) throw new Error('usage: main.js --settings=JSON');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error('--settings is not JSON');
  }
  const checked = validateSettings(parsed);
  if (!checked.ok) throw new Error(checked.reason);
  return checked.settings;
}

let settings: RunnerSettings;
try {
  settings = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`avenger-runner[${process.pid}]: ${(err as Error).message}\n`);
  process.exit(2);
}
void serveRunner({ initial: settings, reload: null });
