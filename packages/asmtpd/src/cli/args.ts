/**
 * args.ts — the command line (spec asmtpd.md §2): which mode, which config file, which flags.
 * Pure: argv in, a CliCommand or a usage error out.
 */
export const DEFAULT_CONFIG_FILE = '/etc/avenger/asmtpd.conf';

export type CliCommand =
  | { mode: 'daemon'; file: string; fileGiven: boolean; foreground: boolean; verbose: boolean }
  | { mode: 'check'; file: string; fileGiven: boolean }
  | { mode: 'avenge'; file: string; fileGiven: boolean; recipient: string; sender: string; ip: string }
  | { mode: 'spf'; file: string; fileGiven: boolean }
  | { mode: 'rbl'; file: string; fileGiven: boolean }
  | { mode: 'help' }
  | { mode: 'version' };

export const USAGE = `usage:
  asmtpd [-d] [--verbose] [-f FILE]   run the daemon (-d: stay in the foreground, log to stderr)
  asmtpd --check [-f FILE]            validate the configuration; prints FILE:LINE: message
  asmtpd --avenge [-f FILE] RECIPIENT [SENDER [IP]]
                                      dry run of the RCPT-time policy (runs the scripts, sends no mail)
  asmtpd --spf [-f FILE]              SPF workbench: reads lines IP SENDER [HELO] (or
                                      IP SENDER HELO -- MECHANISMS...) from stdin, prints result,
                                      explanation and Received-SPF with the configured resolver
  asmtpd --rbl [-f FILE]              reads IP addresses from stdin, prints the RBL listings,
                                      their scores and reasons, the total and the verdict
  asmtpd --version | --help
Default FILE: ${DEFAULT_CONFIG_FILE}. Without it (and without -f), asmtpd runs on its embedded
default: 127.0.0.1:2525, accepted mail kept in the hold-queue Maildir.`;

export function parseArgs(argv: readonly string[]): CliCommand | { mode: 'usage-error'; message: string } {
  let file: string | null = null;
  let mode: 'daemon' | 'check' | 'avenge' | 'spf' | 'rbl' | 'help' | 'version' = 'daemon';
  const positional: string[] = [];
  let foreground = false;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '-f':
      case '--config': {
        const v = argv[++i];
        if (!v) return { mode: 'usage-error', message: `${a} needs a file name` };
        file = v;
        break;
      }
      case '-d':
      case '--foreground':
        foreground = true;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--check':
      case '--avenge':
      case '--spf':
      case '--rbl':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = a.slice(2) as 'check' | 'avenge' | 'spf' | 'rbl';
        break;
      case '-h':
      case '--help':
        return { mode: 'help' };
      case '--version':
        return { mode: 'version' };
      default:
        if (a.startsWith('-f') && a.length > 2) {
          file = a.slice(2);
          break;
        }
        if (mode === 'avenge' && !a.startsWith('-')) {
          positional.push(a);
          break;
        }
        return { mode: 'usage-error', message: `unknown argument ${JSON.stringify(a)}` };
    }
  }
  const fileGiven = file !== null;
  const f = file ?? DEFAULT_CONFIG_FILE;
  if (mode === 'check' || mode === 'spf' || mode === 'rbl') return { mode, file: f, fileGiven };
  if (mode === 'avenge') {
    if (positional.length < 1 || positional.length > 3) return { mode: 'usage-error', message: '--avenge needs RECIPIENT [SENDER [IP]]' };
    const sender = positional[1] ?? '';
    return { mode, file: f, fileGiven, recipient: positional[0]!, sender: sender === '<>' ? '' : sender, ip: positional[2] ?? '127.0.0.1' };
  }
  if (mode === 'daemon') return { mode, file: f, fileGiven, foreground, verbose };
  return { mode };
}
