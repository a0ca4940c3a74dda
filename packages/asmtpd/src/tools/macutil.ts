/**
 * macutil.ts — the `macutil` and `sendmac` utilities (docs/man/macutil.1.md): expiring,
 * MAC-signed address extensions.
 *
 *   main(argv, io)     macutil --gen | --sender [TEMPLATE] | --check CODE | --sendmail ARGS…
 *   sendmac(argv, io)  = main(['--sendmail', ...argv], io)
 *
 * --gen prints a code (mac-code.ts) that expires at --expire (default +21d); --sender prints
 * TEMPLATE with its `*` replaced by a fresh code (TEMPLATE defaults to MACUTIL_SENDER);
 * --check exits 0 when CODE is genuine and unexpired, 1 otherwise (the reason on stderr);
 * --sendmail runs sendmail (MACUTIL_SENDMAIL, default /usr/sbin/sendmail) with `-f ADDRESS` and
 * the remaining arguments, ADDRESS made from the template (--sender, MACUTIL_SENDER, or
 * `$USER+*`), the message on stdin; its exit status is macutil's.
 * Key: mac-key.ts (created on the first --gen, --sender or --sendmail; --check never creates it:
 * without a key no code is genuine). Exit 2 on bad usage or an unusable key file.
 */
import { spawn } from 'node:child_process';
import { checkCode, makeCode, parseWhen } from './mac-code.js';
import { passFilePath, readKey, readOrCreateKey, type KeyFile } from './mac-key.js';
import { writeOut, type ToolIo } from './tool-io.js';

export const DEFAULT_EXPIRE = '+21d';
const DEFAULT_SENDMAIL = '/usr/sbin/sendmail';

export const MACUTIL_USAGE = `usage: macutil --gen [--expire=WHEN] [--passfile=FILE]
       macutil --sender [TEMPLATE] [--expire=WHEN] [--passfile=FILE]
       macutil --check [--passfile=FILE] CODE
       macutil [--sender TEMPLATE] [--expire=WHEN] [--passfile=FILE] --sendmail [SENDMAIL-ARGS...]
       sendmac [SENDMAIL-ARGS...]
  --gen, -g          print a new code
  --sender, -s       print TEMPLATE (default $MACUTIL_SENDER) with its * replaced by a new code
  --check, -c CODE   exit 0 if CODE is genuine and unexpired, 1 if not
  --expire, -e WHEN  when new codes expire: +N[smhdw] (default ${DEFAULT_EXPIRE}), epoch seconds, YYYY-MM-DD[THH:MM[:SS][Z]]
  --passfile FILE    the key file (default $MACUTIL_PASSFILE, else ~/.avenger/.macpass; made on first use)
  --sendmail ARGS    run sendmail -f ADDRESS ARGS (ADDRESS from --sender, $MACUTIL_SENDER or $USER+*)
Exit: 0 ok, 1 not genuine or expired (--check), 2 error; --sendmail: sendmail's status.`;

type Mode = 'gen' | 'sender' | 'check' | 'sendmail';
interface Args {
  mode: Mode;
  expire: string;
  passfile: string | null;
  template: string | null;
  code: string | null;
  sendmailArgs: string[];
}

class Usage extends Error {}

function parseArgs(argv: readonly string[]): Args | 'help' {
  const a: Args = { mode: 'gen', expire: DEFAULT_EXPIRE, passfile: null, template: null, code: null, sendmailArgs: [] };
  let mode: Mode | null = null;
  const setMode = (m: Mode): void => {
    if (mode !== null && !(mode === 'sender' && m === 'sendmail'))
      throw new Usage(`--${m} cannot be combined with --${mode}`);
    mode = m;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^(--[a-z]+)=(.*)$/s.exec(arg);
    const name = m ? m[1]! : arg;
    const value = (): string => {
      const v = m ? m[2] : argv[++i];
      if (v === undefined) throw new Usage(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '-h':
      case '--help':
        return 'help';
      case '-g':
      case '--gen':
        setMode('gen');
        break;
      case '-s':
      case '--sender':
        setMode('sender');
        if (m) a.template = m[2]!;
        else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('-')) a.template = argv[++i]!;
        break;
      case '-c':
      case '--check':
        setMode('check');
        a.code = m ? m[2]! : null;
        break;
      case '-e':
      case '--expire':
        a.expire = value();
        break;
      case '--passfile':
        a.passfile = value();
        break;
      case '--sendmail':
        if (m) throw new Usage('--sendmail takes the arguments that follow it, not a value');
        setMode('sendmail');
        a.sendmailArgs = argv.slice(i + 1);
        i = argv.length;
        break;
      default:
        if (arg.startsWith('-') && arg !== '-') throw new Usage(`unknown option ${JSON.stringify(arg)}`);
        if (mode === 'check' && a.code === null) a.code = arg;
        else throw new Usage(`unexpected argument ${JSON.stringify(arg)}`);
    }
  }
  if (mode === null) throw new Usage('say what to do: --gen, --sender, --check or --sendmail');
  a.mode = mode;
  if (a.mode === 'check' && a.code === null) throw new Usage('--check needs a CODE');
  return a;
}

function expiryOf(a: Args): number {
  const when = parseWhen(a.expire, Math.floor(Date.now() / 1000));
  if (when.kind === 'error')
    throw new Usage(`bad --expire ${JSON.stringify(a.expire)}: +N[smhdw], epoch seconds or YYYY-MM-DD`);
  return when.seconds;
}

/** TEMPLATE with its one `*` replaced by a new code. */
function address(template: string, key: KeyFile, expiresAt: number): string {
  const stars = template.split('*').length - 1;
  if (stars !== 1)
    throw new Usage(`the template ${JSON.stringify(template)} needs exactly one * (where the code goes)`);
  return template.replace('*', makeCode(key.key, expiresAt));
}

/** `-f`, `-fADDR`, `-r`… before a `--`: the envelope sender is ours to set. */
function senderOption(args: readonly string[]): string | undefined {
  const options = args.indexOf('--') < 0 ? args : args.slice(0, args.indexOf('--'));
  return options.find((x) => /^-[fr]/.test(x));
}

function runSendmail(program: string, argv: string[], io: ToolIo): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(program, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...io.env } });
    child.stdout!.pipe(io.stdout, { end: false });
    child.stderr!.pipe(io.stderr, { end: false });
    io.stdin.pipe(child.stdin!);
    child.stdin!.on('error', () => {}); // sendmail exited without reading it all: its status decides
    child.on('error', (err) => {
      io.stderr.write(`macutil: cannot run ${program}: ${err.message}\n`);
      resolve(2);
    });
    child.on('close', (status, signal) => {
      io.stdin.unpipe(child.stdin!);
      if (signal) io.stderr.write(`macutil: ${program} killed by ${signal}\n`);
      resolve(signal ? 2 : (status ?? 2));
    });
  });
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  let a: Args | 'help';
  try {
    a = parseArgs(argv);
    if (a === 'help') {
      await writeOut(io.stdout, MACUTIL_USAGE + '\n');
      return 0;
    }
    const { path, defaultDir } = passFilePath(io.env, a.passfile);
    if (a.mode === 'check') {
      const key = readKey(path);
      if (key?.warning) io.stderr.write(`macutil: warning: ${key.warning}\n`);
      const code = a.code!;
      if (!key) {
        io.stderr.write(`macutil: no key file ${path} yet: no code is genuine\n`);
        return 1;
      }
      const r = checkCode(key.key, code, Math.floor(Date.now() / 1000));
      if (r.kind === 'valid') return 0;
      const shown = JSON.stringify(code.length > 40 ? code.slice(0, 40) + '…' : code);
      io.stderr.write(
        r.kind === 'expired'
          ? `macutil: ${shown}: expired at ${new Date(r.expiresAt * 1000).toISOString()}\n`
          : `macutil: ${shown}: ${r.why}\n`,
      );
      return 1;
    }
    const expiresAt = expiryOf(a);
    let template = a.template ?? io.env.MACUTIL_SENDER ?? null;
    if (a.mode === 'sender' && template === null) throw new Usage('--sender needs a TEMPLATE (or MACUTIL_SENDER)');
    if (a.mode === 'sendmail') {
      const taken = senderOption(a.sendmailArgs);
      if (taken !== undefined) throw new Usage(`${taken}: the envelope sender is the one macutil makes; leave -f out`);
      const user = io.env.USER ?? io.env.LOGNAME;
      if (template === null && !user) throw new Usage('no template: give --sender TEMPLATE or set MACUTIL_SENDER');
      template ??= `${user}+*`;
    }
    const key = readOrCreateKey(path, defaultDir);
    if (key.warning) io.stderr.write(`macutil: warning: ${key.warning}\n`);
    if (a.mode === 'gen') {
      await writeOut(io.stdout, makeCode(key.key, expiresAt) + '\n');
      return 0;
    }
    const sender = address(template!, key, expiresAt);
    if (a.mode === 'sender') {
      await writeOut(io.stdout, sender + '\n');
      return 0;
    }
    return await runSendmail(io.env.MACUTIL_SENDMAIL || DEFAULT_SENDMAIL, ['-f', sender, ...a.sendmailArgs], io);
  } catch (err) {
    if (err instanceof Usage) io.stderr.write(`macutil: ${err.message}\n${MACUTIL_USAGE}\n`);
    else io.stderr.write(`macutil: ${(err as Error).message}\n`);
    return 2;
  }
}

export function sendmac(argv: string[], io: ToolIo): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) return main(['--help'], io);
  return main(['--sendmail', ...argv], io);
}
