/*
 * @asmtpd/avenger-runner — the privileged script runner (see README.md, SECURITY first).
 *
 * PUBLIC
 *   startRunner({settings} | {entry}) → RunnerClient   start the runner process and talk to it
 *   serveRunner({initial, reload})             the runner's request loop, for an entry of one's own
 *   runInProcess(request, settings)             the same work in the calling process
 *   runLocalDelivery(request, context)         a user's ~/.avenger/local… (or a fallback) with the
 *                                              message on stdin, in the calling process (avenger.local)
 *   createAccounts, withSystemFallback, parsePasswdLine, runnableProblem   accounts, shared with asmtpd
 *   SHELL_PRELUDE, parseDecision               the rcpt shell prelude and its record parser
 *   validateRequest, validateSettings, isValidCandidateName, isValidSpoolName
 *   types: RunRequest (RcptRequest | BodyTestRequest), RunResult, RunnerSettings, ScriptLimits, …
 */
export {
  startRunner,
  runnerMainPath,
  RUNNER_CAPABILITIES,
  type RunnerClient,
  type StartRunnerOptions,
} from './client.js';
export {
  runInProcess,
  createRunnerContext,
  reloadRunnerContext,
  type RunnerContext,
  type RunnerContextOptions,
} from './runner.js';
export { serveRunner, type SettingsSource } from './serve.js';
export {
  runLocalDelivery,
  LOCAL_PRELUDE,
  type LocalDeliveryRequest,
  type LocalDeliveryResult,
} from './local-delivery.js';
export {
  createAccounts,
  withSystemFallback,
  parsePasswdLine,
  runnableProblem,
  readUidMin,
  NOBODY_UID,
  type Account,
  type Accounts,
} from './accounts.js';
export { SHELL_PRELUDE, parseDecision } from './prelude.js';
export { INSPECTOR_DISABLED } from './no-inspector.js';
export {
  readLines,
  LineSplitter,
  validateRequest,
  validateSettings,
  isValidCandidateName,
  isValidSpoolName,
  SAFE_PATH,
  MAX_OUTPUT_BYTES,
  PROTOCOL_VERSION,
  DEFAULT_LIMITS,
  SYSTEM_SCRIPTS,
  type RunRequest,
  type RcptRequest,
  type BodyTestRequest,
  type ReloadRequest,
  type RunResult,
  type RunnerSettings,
  type ScriptLimits,
  type ScriptDecision,
  type DecisionVerb,
  type ReadyMessage,
  type ResultMessage,
} from './protocol.js';
