/*
 * @asmtpd/avenger-runner — the privileged script runner (see README.md, SECURITY first).
 *
 * PUBLIC
 *   startRunner(options) → RunnerClient        start the runner process and talk to it
 *   runInProcess(request) → Promise<RunResult> the same work in the calling process
 *   SHELL_PRELUDE, parseDecision               the rcpt shell prelude and its record parser
 *   validateRequest, isValidCandidateName      request checks shared by both sides
 *   types: RunRequest (RcptRequest | CommandRequest), RunResult, Decision, DecisionVerb
 */
export { startRunner, runnerMainPath, type RunnerClient, type StartRunnerOptions } from './client.js';
export { runInProcess, detectRunnerContext, type RunnerContext, type RunnerContextOptions } from './runner.js';
export { SHELL_PRELUDE, parseDecision } from './prelude.js';
export {
  readLines,
  LineSplitter,
  validateRequest,
  isValidCandidateName,
  SAFE_PATH,
  MAX_OUTPUT_BYTES,
  PROTOCOL_VERSION,
  type RunRequest,
  type RcptRequest,
  type CommandRequest,
  type RunResult,
  type Decision,
  type DecisionVerb,
  type ReadyMessage,
  type ResultMessage,
} from './protocol.js';
