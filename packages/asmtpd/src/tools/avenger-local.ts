/**
 * avenger-local.ts — `avenger.local [-f SENDER] [-D RCPT] [-a EXT] [-d] [--config=FILE] USER`
 * (docs/man/avenger.local.1.md): the MTA's local delivery agent. The message on stdin goes to the
 * first of USER's ~/.avenger/local, local+EXT…, local+default (the rcpt lookup, policy/lookup.ts),
 * run as USER; without one (or without ~/.avenger), to ~/Maildir/ by deliver(1), as USER.
 *
 *   main(argv, io) -> 0 delivered; 67 no such user, or a recipient name that cannot name a file
 *     (".." in it, "/" or a leading "." in the extension); 64 bad usage; 75 anything temporary:
 *     the configuration, the account may not run scripts (uid 0, a system account…), an unsafe
 *     local file, a script that fails, is killed or outlives LOCAL_TIMEOUT_MS; a script's own
 *     sysexits status (64–78) is passed on, and 100 (qmail's "permanent") becomes 77
 *
 *   The work is the runner's (@asmtpd/avenger-runner runLocalDelivery, in this process): the same
 *   account rules, lookup with the user's ids, script checks, user switch and resource limits as an
 *   rcpt script (docs/security.md), except that a uid-0 recipient is refused, not run as
 *   AvengerUser, and the file size is not limited (mailboxes grow). Started as root, everything
 *   runs as USER; started as USER (Postfix's local(8) runs mailbox_command so), as USER only.
 *   The message is first copied to an unlinked private file (so scripts get a seekable stdin, which
 *   edinplace may rewrite for the commands after it); the script's output goes to our stderr,
 *   where the MTA puts it in its log or bounce.
 *   Settings from asmtpd.conf (--config, default /etc/avenger/asmtpd.conf, or the embedded
 *   default): AvengerUser, PasswdFile, Separator (`+` when unset), Hostname, the Avenger*Limit
 *   directives.
 *   Script variables: SENDER (-f), SENDER_LOCAL, SENDER_HOST, RECIPIENT (-D, else
 *   USER[+EXT]@Hostname), RECIPIENT_LOCAL, RECIPIENT_HOST, EXTENSION, DEFAULT; and the runner's
 *   USER, HOME, PATH (the utilities first), TMPDIR, AVENGER_USER.
 */
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createAccounts,
  createRunnerContext,
  runLocalDelivery,
  withSystemFallback,
  type LocalDeliveryResult,
  type RunnerSettings,
} from '@asmtpd/avenger-runner';
import { formatIssue } from '../config/load.js';
import { DEFAULT_CONFIG_FILE, loadForCommand } from '../config/source.js';
import type { Config } from '../config/types.js';
import { runnerSettings, TOOLS_DIR } from '../daemon/runner-settings.js';
import { scriptCandidates } from '../policy/lookup.js';
import { writeOut, type ToolIo } from './tool-io.js';

export const AVENGER_LOCAL_USAGE = `usage: avenger.local [-f SENDER] [-D RECIPIENT] [-a EXTENSION] [-d] [--config=FILE] USER
  Deliver the message on standard input for USER: run ~USER/.avenger/local (local+EXTENSION,
  local+default) as USER with the message on its standard input, or, without such a file,
  deliver it to ~USER/Maildir/.
  -f SENDER      the envelope sender (SENDER)
  -D RECIPIENT   the recipient address (RECIPIENT; default USER[+EXTENSION]@Hostname)
  -a EXTENSION   the address extension (or give USER as user+extension)
  -d             accepted for procmail compatibility
  --config=FILE  asmtpd's configuration (default ${DEFAULT_CONFIG_FILE})
Exit: 0 delivered, 64 bad usage, 67 no such user, 75 temporary failure (try again).`;

/** A local script that runs longer is killed and the delivery deferred (Postfix's command_time_limit is 1000 s). */
export const LOCAL_TIMEOUT_MS = 600_000;

const EX_USAGE = 64;
const EX_NOUSER = 67;
const EX_NOPERM = 77;
const EX_TEMPFAIL = 75;

/** The variables a local file gets (the runner adds USER, HOME, PATH, TMPDIR, AVENGER_USER). */
export const LOCAL_VARIABLES = [
  'SENDER',
  'SENDER_LOCAL',
  'SENDER_HOST',
  'RECIPIENT',
  'RECIPIENT_LOCAL',
  'RECIPIENT_HOST',
  'EXTENSION',
  'DEFAULT',
];

interface Options {
  sender: string | null;
  recipient: string | null;
  extension: string | null;
  config: string | null;
  user: string;
}

type Parsed = { help: true } | Options | { error: string };

function parseArgv(argv: readonly string[]): Parsed {
  const o: Options = { sender: null, recipient: null, extension: null, config: null, user: '' };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '-d') continue;
    if (a.startsWith('--config=')) o.config = a.slice('--config='.length);
    else if (a === '-f' || a === '-D' || a === '-a') {
      const v = argv[++i];
      if (v === undefined) return { error: `${a} needs a value` };
      if (a === '-f') o.sender = v;
      else if (a === '-D') o.recipient = v;
      else o.extension = v === '' ? null : v;
    } else if (a.startsWith('-') && a.length > 1) return { error: `unknown option ${a}` };
    else rest.push(a);
  }
  if (rest.length !== 1 || rest[0] === '') return { error: rest.length === 0 ? 'missing USER' : 'too many arguments' };
  o.user = rest[0]!;
  return o;
}

function splitAddress(address: string): { local: string; host: string } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, host: '' } : { local: address.slice(0, at), host: address.slice(at + 1) };
}

/** The settings of this delivery: the daemon's runner settings, for local files. */
async function localSettings(config: Config): Promise<RunnerSettings> {
  const accounts = withSystemFallback(createAccounts(config.passwdFile));
  const denied: number[] = [];
  if (process.getuid?.() === 0)
    for (const name of [config.daemonUser, config.netFactsUser]) {
      const a = await accounts.lookup(name);
      if (a !== null) denied.push(a.uid);
    }
  const base = runnerSettings(config, { daemonUid: null, deniedUids: denied }, { bodyTests: false });
  return {
    ...base,
    envNames: LOCAL_VARIABLES,
    fixedEnv: {},
    limits: { ...base.limits, fileBytes: 0 },
  };
}

/** The message, copied to a private file nobody else can open (unlinked at once). */
async function spoolMessage(io: ToolIo): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'avenger-local-'));
  const path = join(dir, 'message');
  const fd = openSync(path, 'wx+', 0o600);
  unlinkSync(path);
  rmdirSync(dir);
  try {
    for await (const chunk of io.stdin) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The exit status for the MTA, and what to say on stderr. */
export function exitStatus(r: LocalDeliveryResult): { status: number; said: string | null } {
  switch (r.kind) {
    case 'unknown-user':
      return { status: EX_NOUSER, said: 'no such user' };
    case 'refused':
      return { status: EX_TEMPFAIL, said: `refused${r.script ? ` ${r.script}` : ''}: ${r.reason}` };
    case 'error':
      return { status: EX_TEMPFAIL, said: r.reason };
    case 'ran': {
      const what = r.script ?? 'delivery to ~/Maildir/';
      if (r.timedOut) return { status: EX_TEMPFAIL, said: `${what} timed out after ${LOCAL_TIMEOUT_MS / 1000} s` };
      if (r.exitCode === null) return { status: EX_TEMPFAIL, said: `${what} was killed (${r.signal})` };
      if (r.exitCode === 0) return { status: 0, said: null };
      const said = `${what} exited ${r.exitCode}`;
      if (r.script === null) return { status: EX_TEMPFAIL, said };
      if (r.exitCode >= 64 && r.exitCode <= 78) return { status: r.exitCode, said };
      if (r.exitCode === 100) return { status: EX_NOPERM, said };
      return { status: EX_TEMPFAIL, said };
    }
  }
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const o = parseArgv(argv);
  if ('help' in o) {
    await writeOut(io.stdout, AVENGER_LOCAL_USAGE + '\n');
    return 0;
  }
  const say = (text: string) => writeOut(io.stderr, `avenger.local: ${text}\n`);
  if ('error' in o) {
    await say(`${o.error}\n${AVENGER_LOCAL_USAGE}`);
    return EX_USAGE;
  }
  const loaded = loadForCommand({ file: o.config ?? DEFAULT_CONFIG_FILE, fileGiven: o.config !== null });
  if (loaded.result.kind === 'error') {
    await say(`${loaded.source}: ${loaded.result.errors.map(formatIssue).join('; ')}`);
    return EX_TEMPFAIL;
  }
  const config = loaded.result.config;
  const separator = config.separator ?? '+';
  let name = o.user;
  let extension = o.extension;
  const cut = name.indexOf(separator);
  if (cut >= 0) {
    if (extension !== null) {
      await say(`${o.user}: an extension both in USER and in -a`);
      return EX_USAGE;
    }
    extension = name.slice(cut + 1) || null;
    name = name.slice(0, cut);
  }
  const localPart = extension === null ? name : `${name}${separator}${extension}`;
  const recipient = o.recipient ?? `${localPart}@${config.hostname}`;
  const lookup = scriptCandidates(extension, separator, 'local');
  if (name.includes('/') || localPart.includes('..') || splitAddress(recipient).local.includes('..'))
    return say(`${localPart}: not a mailbox name`).then(() => EX_NOUSER);
  if (lookup.kind === 'invalid') return say(`${localPart}: ${lookup.reason}`).then(() => EX_NOUSER);

  const env: Record<string, string> = {
    RECIPIENT: recipient,
    RECIPIENT_LOCAL: splitAddress(recipient).local,
    RECIPIENT_HOST: splitAddress(recipient).host.toLowerCase(),
  };
  if (o.sender !== null)
    Object.assign(env, {
      SENDER: o.sender,
      SENDER_LOCAL: splitAddress(o.sender).local,
      SENDER_HOST: splitAddress(o.sender).host.toLowerCase(),
    });
  if (extension !== null) env.EXTENSION = extension;
  const candidateEnv: Record<string, Record<string, string>> = {};
  for (const c of lookup.candidates) if (c.default !== null) candidateEnv[c.file] = { DEFAULT: c.default };

  process.umask(0o077);
  let fd: number | null = null;
  let context: Awaited<ReturnType<typeof createRunnerContext>> | null = null;
  try {
    fd = await spoolMessage(io);
    context = await createRunnerContext(await localSettings(config));
    const r = await runLocalDelivery(
      {
        account: name,
        candidates: lookup.candidates.map((c) => c.file),
        candidateEnv,
        env,
        stdinFd: fd,
        fallback: [join(TOOLS_DIR, 'deliver'), 'Maildir/'],
        timeoutMs: LOCAL_TIMEOUT_MS,
      },
      context,
    );
    if (r.kind === 'ran') await writeOut(io.stderr, r.stdout + r.stderr);
    const { status, said } = exitStatus(r);
    if (said !== null) await say(`${name}: ${said}`);
    return status;
  } catch (err) {
    await say(`${name}: ${(err as Error).message}`);
    return EX_TEMPFAIL;
  } finally {
    context?.spawner.close();
    if (fd !== null) closeSync(fd);
  }
}
