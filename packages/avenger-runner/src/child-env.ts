/*
 * child-env — the environment a script or body test gets.
 *
 * SUMMARY
 *   childEnvironment(requested, settings, account) → Record<string, string>
 *   requestedVariables(requested, settings) → the request's part alone (also for candidateEnv)
 *     1. from the request, only the names the settings allow (the daemon's table of script
 *        variables) and that are not the runner's own; other names are dropped;
 *     2. each value cleaned: control characters (NUL, CR, LF, …) become '?', and a value is cut
 *        at MAX_VALUE_CHARS — a hostile DNS answer or TXT record is data, never a reason to
 *        refuse the request (which would turn a user's reject into a deferral);
 *     3. then the runner's own values: the settings' fixed variables (the helpers' node and
 *        script), USER and HOME of the account it runs as, AVENGER_USER, TMPDIR and PATH (the
 *        utilities' directory, toolsDir, then SAFE_PATH).
 *
 * SECURITY
 *   A request can never set LD_PRELOAD, BASH_ENV, ENV, IFS or the helpers' program paths: only
 *   the listed fact names pass, and the runner's values come last.
 */
import { SAFE_PATH, type RunnerSettings } from './protocol.js';

export const MAX_VALUE_CHARS = 4096;
const CONTROL = /[\x00-\x1f\x7f]/g;

export function cleanValue(value: string): string {
  const short = value.length > MAX_VALUE_CHARS ? value.slice(0, MAX_VALUE_CHARS) : value;
  return short.replace(CONTROL, '?');
}

type EnvSettings = Pick<RunnerSettings, 'envNames' | 'fixedEnv' | 'avengerUser' | 'toolsDir'>;

/** The variables of the request that pass: listed, not the runner's own, values cleaned. */
export function requestedVariables(
  requested: Readonly<Record<string, string>> | undefined,
  settings: EnvSettings,
): Record<string, string> {
  const env: Record<string, string> = {};
  if (requested === undefined) return env;
  for (const [name, value] of Object.entries(requested)) {
    if (settings.envNames.includes(name) && !RUNNER_OWNED.has(name) && !Object.hasOwn(settings.fixedEnv, name))
      env[name] = cleanValue(value);
  }
  return env;
}

const RUNNER_OWNED = new Set(['USER', 'HOME', 'AVENGER_USER', 'TMPDIR', 'PATH']);

export function childEnvironment(
  requested: Readonly<Record<string, string>>,
  settings: EnvSettings,
  account: { name: string; home: string },
): Record<string, string> {
  return Object.assign(requestedVariables(requested, settings), settings.fixedEnv, {
    USER: account.name,
    HOME: account.home,
    AVENGER_USER: settings.avengerUser,
    TMPDIR: '/tmp',
    PATH: settings.toolsDir === null ? SAFE_PATH : `${settings.toolsDir}:${SAFE_PATH}`,
  });
}
