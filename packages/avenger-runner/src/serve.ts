/*
 * serve — the runner's request loop, for any entry point that knows where its settings come from.
 *
 * SUMMARY
 *   serveRunner({initial, reload?}) — builds the context from the initial settings, announces
 *   itself with a ready line, then reads one JSON request per line on stdin and writes one
 *   {"id","result"} line per request on stdout, in completion order (protocol.ts). A `reload`
 *   request asks the runner to fetch its settings again from the same source (for asmtpd: it
 *   re-reads the configuration file itself) — never to take them from the pipe. When stdin ends,
 *   it kills the process groups of requests still running and exits.
 *
 * SECURITY
 *   umask 077 for every child; descriptors inherited without close-on-exec are closed at start
 *   (descriptors.ts). A request the runner refuses for who or what it names is logged on stderr
 *   (the daemon copies it into its log), since a well-behaved daemon never sends one.
 */
import { killGroup } from './child.js';
import { closeInheritedDescriptors } from './descriptors.js';
import {
  readLines,
  PROTOCOL_VERSION,
  validateRequest,
  type ReadyMessage,
  type ResultMessage,
  type RunResult,
  type RunnerSettings,
} from './protocol.js';
import { createRunnerContext, reloadRunnerContext, runRequest, type RunnerContext } from './runner.js';

export interface SettingsSource {
  initial: RunnerSettings;
  /** fetch the settings again (null: this runner's settings are fixed) */
  reload: (() => Promise<RunnerSettings>) | null;
}

function log(message: string): void {
  process.stderr.write(`avenger-runner[${process.pid}]: ${message}\n`);
}

export async function serveRunner(source: SettingsSource): Promise<void> {
  process.umask(0o077);
  try {
    closeInheritedDescriptors();
  } catch (err) {
    log(`warning: cannot check inherited descriptors: ${(err as Error).message}`);
  }
  let context: RunnerContext;
  try {
    context = await createRunnerContext(source.initial);
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  context.spawner.warmUp();
  if (!context.privileged) log(`not running as root: every child runs as uid ${context.selfUid}`);

  const send = (message: ResultMessage | ReadyMessage): void => {
    process.stdout.write(`${JSON.stringify(message)}\n`);
  };
  process.stdout.on('error', () => {
    /* the daemon is gone; stdin's end will follow */
  });

  const reload = async (): Promise<RunResult> => {
    if (source.reload === null) return { kind: 'error', reason: 'this runner has fixed settings' };
    let updated: Awaited<ReturnType<typeof reloadRunnerContext>>;
    try {
      updated = await reloadRunnerContext(context, await source.reload());
    } catch (err) {
      log(`reload refused, the settings stay as they were: ${(err as Error).message}`);
      return { kind: 'error', reason: `reload refused: ${(err as Error).message}` };
    }
    const { changes, refused } = updated;
    context = updated.context;
    if (refused.length > 0) log(`reload: not applied until a restart: ${refused.join(', ')}`);
    return { kind: 'reloaded', changes, needRestart: refused };
  };

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      log('ignoring a line that is not JSON');
      send({ id: null, result: { kind: 'error', reason: 'bad request: not JSON' } });
      return;
    }
    const rawId = (parsed as { id?: unknown } | null)?.id;
    const id = typeof rawId === 'number' ? rawId : null;
    const checked = validateRequest(parsed);
    if (!checked.ok) {
      log(checked.reason);
      send({ id, result: { kind: 'error', reason: checked.reason } });
      return;
    }
    const request = checked.request;
    const pending = (request.kind === 'reload' ? reload() : runRequest(request, context)).catch(
      (err: unknown): RunResult => ({ kind: 'error', reason: `runner bug: ${(err as Error).message}` }),
    );
    void pending.then((result) => {
      // a request refused for who or what it named is worth the administrator's eye
      if (result.kind === 'refused' && result.script === null) log(`refused ${request.kind} request: ${result.reason}`);
      send({ id, result });
    });
  };

  readLines(process.stdin, {
    onLine: handleLine,
    onFatal(err) {
      log(`fatal: ${err.message}`);
      process.exit(1);
    },
    onEnd() {
      for (const pid of context.liveGroups) killGroup(pid);
      process.exit(0);
    },
  });

  send({
    kind: 'ready',
    version: PROTOCOL_VERSION,
    pid: process.pid,
    privileged: context.privileged,
    uid: context.selfUid,
  });
}
