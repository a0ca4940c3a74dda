/**
 * relay/sendmail-relay — deliver by running a command per message (the Sendmail directive).
 *
 * Public:
 *   createSendmailRelay({ argvTemplate, timeoutMs }) → Relay
 *   sendmailArgv(template, from, to) → string[]     the argv actually run (exported for tests and --check)
 *
 * argv: the template words as configured; in each word "%s" is replaced by the envelope sender
 * (the null sender is written "<>", which sendmail, Postfix and Exim all read as the null sender
 * after -f, and which cannot vanish the way an empty word can in wrappers); the recipients are
 * appended, one word each. The command is spawned directly (execve), NEVER through a shell, so an
 * address such as `$(id)@x` or `a;rm -rf /@x` arrives verbatim. A recipient starting with "-"
 * would be read as an option: it is refused (553 5.1.3) unless the template has a "--" word.
 *
 * stdin: headerPrefix then the spool file, streamed. Environment: PATH only.
 * Exit status: 0 → accepted; 75 (EX_TEMPFAIL) → deferred 451 4.3.0; other → rejected 554 5.3.0
 * with the first line of stderr; killed by a signal, could not start, or still running after
 * timeoutMs (SIGTERM, then SIGKILL after 2 s) → deferred 451 4.3.0: a temporary doubt never
 * becomes a bounce.
 */
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { messageChunks } from './message-body.js';
import { localFailure } from './relay-replies.js';
import type { DeliveryResult, OutgoingMessage, Relay } from './types.js';
import { REPLIES } from '../reply/catalogue.js';

const EX_TEMPFAIL = 75;
const KILL_GRACE_MS = 2000;
const STDERR_MAX_BYTES = 4096;
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface SendmailRelayOptions {
  /** e.g. ["/usr/sbin/sendmail", "-oi", "-f", "%s", "--"] */
  argvTemplate: string[];
  timeoutMs: number;
}

export function sendmailArgv(template: string[], from: string, to: string[]): string[] {
  const sender = from === '' ? '<>' : from;
  return [...template.map((word) => word.replace(/%s/g, () => sender)), ...to];
}

type ChildOutcome =
  | { kind: 'exited'; status: number; stderr: string }
  | { kind: 'signaled'; signal: string; stderr: string }
  | { kind: 'spawn-failed'; reason: string }
  | { kind: 'spool-failed'; reason: string }
  | { kind: 'timed-out' };

export function createSendmailRelay(options: SendmailRelayOptions): Relay {
  const [command] = options.argvTemplate;
  const hasEndOfOptions = options.argvTemplate.includes('--');

  function run(argv: string[], msg: OutgoingMessage): Promise<ChildOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      let timedOut = false;
      let stderr = '';
      const settle = (o: ChildOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const child = spawn(argv[0]!, argv.slice(1), {
        shell: false,
        stdio: ['pipe', 'ignore', 'pipe'],
        env: { PATH: process.env['PATH'] ?? SAFE_PATH },
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
      }, options.timeoutMs);
      child.stderr!.on('data', (chunk: Buffer) => {
        if (stderr.length < STDERR_MAX_BYTES) stderr += chunk.toString('utf8');
      });
      child.on('error', (err: NodeJS.ErrnoException) =>
        settle({ kind: 'spawn-failed', reason: err.code ?? err.message }),
      );
      // after a kill, 'exit' decides: a grandchild may keep stderr (and so 'close') open
      child.on('exit', () => {
        if (timedOut) settle({ kind: 'timed-out' });
      });
      child.on('close', (status, signal) => {
        if (timedOut) return settle({ kind: 'timed-out' });
        if (signal) return settle({ kind: 'signaled', signal, stderr });
        settle({ kind: 'exited', status: status ?? 1, stderr });
      });
      // the spool cannot be read: kill the child BEFORE its stdin closes, so it never takes a
      // truncated message for a whole one
      let spoolError = '';
      async function* guardedChunks(): AsyncGenerator<Buffer> {
        try {
          yield* messageChunks(msg);
        } catch (err) {
          spoolError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
          child.kill('SIGKILL');
          settle({ kind: 'spool-failed', reason: spoolError });
          throw err;
        }
      }
      // a child that exits without reading stdin makes the write fail (EPIPE): its exit status decides
      pipeline(Readable.from(guardedChunks(), { objectMode: false }), child.stdin!).catch(() => {});
    });
  }

  async function deliver(msg: OutgoingMessage, _log: Logger): Promise<DeliveryResult> {
    const startedMs = Date.now();
    const ms = (): number => Date.now() - startedMs;
    try {
      const dashed = msg.to.find((to) => to.startsWith('-'));
      if (dashed !== undefined && !hasEndOfOptions) {
        return { kind: 'rejected', reply: REPLIES.sendmailDashedRecipient(), ms: ms() };
      }
      const outcome = await run(sendmailArgv(options.argvTemplate, msg.from, msg.to), msg);
      switch (outcome.kind) {
        case 'exited': {
          const firstLine =
            outcome.stderr
              .split('\n')
              .find((l) => l.trim() !== '')
              ?.trim() ?? '';
          const detail = firstLine ? `: ${firstLine}` : '';
          if (outcome.status === 0) return { kind: 'accepted', response: `${command} exited 0`, ms: ms() };
          if (outcome.status === EX_TEMPFAIL) {
            return { kind: 'deferred', reply: REPLIES.sendmailTempfail(String(command), detail), ms: ms() };
          }
          return { kind: 'rejected', reply: REPLIES.sendmailFailed(String(command), outcome.status, detail), ms: ms() };
        }
        case 'signaled':
          return { kind: 'deferred', reply: localFailure(`${command} killed by ${outcome.signal}`), ms: ms() };
        case 'spawn-failed':
          return { kind: 'deferred', reply: localFailure(`cannot run ${command}: ${outcome.reason}`), ms: ms() };
        case 'spool-failed':
          return {
            kind: 'deferred',
            reply: localFailure(`could not read the spooled message: ${outcome.reason}`),
            ms: ms(),
          };
        case 'timed-out':
          return {
            kind: 'deferred',
            reply: localFailure(`${command} did not finish within ${options.timeoutMs} ms`),
            ms: ms(),
          };
      }
    } catch (err) {
      return { kind: 'deferred', reply: localFailure(`relay error: ${(err as Error).message}`), ms: ms() };
    }
  }

  return { deliver, close: async () => {}, describe: () => `sendmail ${command}` };
}
