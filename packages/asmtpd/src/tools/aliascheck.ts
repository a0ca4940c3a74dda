/**
 * aliascheck.ts — the `aliascheck [--nopwd] [-v] [--] NAME [ALIASFILE]` utility
 * (docs/man/aliascheck.1.md): is NAME a mail alias, or an account?
 *
 *   main(argv, io)                          the command
 *   runAliascheck(argv, io, accounts?)      the same with the account database given (tests)
 *   formatTargets(targets) -> string        an alias's right-hand side, one line
 *
 * NAME is lower-cased. ALIASFILE (default /etc/aliases) is read as the AliasFile directive reads
 * it (recipients/aliases.ts, aliases(5): continuation lines, comments, quoted names and targets;
 * `:include:` is printed, never followed). An alias: its targets are printed, exit 0. Otherwise,
 * without --nopwd, an account of the system database (getent passwd, through the runner's
 * account lookup; os.userInfo() only knows the caller): its name is printed, exit 0. Neither: 1.
 * Exit 2: bad usage, an alias file that cannot be read, or a failed account lookup. Bad lines of
 * the alias file are skipped (as the daemon does); -v reports them on stderr.
 */
import { createAccounts, type Accounts } from '../recipients/accounts.js';
import { loadAliasFile, type AliasTarget } from '../recipients/aliases.js';
import { formatIssue } from '../config/issues.js';
import { writeOut, type ToolIo } from './tool-io.js';

export const DEFAULT_ALIAS_FILE = '/etc/aliases';

export const ALIASCHECK_USAGE = `usage: aliascheck [--nopwd] [-v] [--] NAME [ALIASFILE]
  Exit 0 and print what NAME stands for if it is an alias in ALIASFILE (default ${DEFAULT_ALIAS_FILE},
  aliases(5) format) or, without --nopwd, an account (getent passwd); exit 1 if it is neither.
  --nopwd   aliases only, not accounts
  -v        report the alias file's bad lines (skipped) on stderr
Exit: 0 found, 1 not found, 2 error.`;

const quoteIfNeeded = (text: string): string =>
  /[\s,"]/.test(text) ? `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"` : text;

export function formatTargets(targets: readonly AliasTarget[]): string {
  return targets
    .map((t) => {
      switch (t.kind) {
        case 'address':
          return quoteIfNeeded((t.literal ? '\\' : '') + t.address);
        case 'command':
          return quoteIfNeeded(`|${t.command}`);
        case 'file':
          return quoteIfNeeded(t.path);
        case 'include':
          return `:include:${quoteIfNeeded(t.path)}`;
      }
    })
    .join(', ');
}

class Usage extends Error {}

function parseArgs(argv: readonly string[]): { nopwd: boolean; verbose: boolean; name: string; file: string } | 'help' {
  let nopwd = false,
    verbose = false,
    options = true;
  const rest: string[] = [];
  for (const arg of argv) {
    if (options && arg === '--') options = false;
    else if (options && (arg === '-h' || arg === '--help')) return 'help';
    else if (options && arg === '--nopwd') nopwd = true;
    else if (options && (arg === '-v' || arg === '--verbose')) verbose = true;
    else if (options && arg.startsWith('-') && arg !== '-') throw new Usage(`unknown option ${JSON.stringify(arg)}`);
    else rest.push(arg);
  }
  if (rest.length < 1 || rest.length > 2) throw new Usage(rest.length === 0 ? 'missing NAME' : 'too many arguments');
  if (rest[0] === '') throw new Usage('empty NAME');
  return { nopwd, verbose, name: rest[0]!.toLowerCase(), file: rest[1] ?? DEFAULT_ALIAS_FILE };
}

export async function runAliascheck(argv: string[], io: ToolIo, accounts?: Accounts): Promise<number> {
  try {
    const a = parseArgs(argv);
    if (a === 'help') {
      await writeOut(io.stdout, ALIASCHECK_USAGE + '\n');
      return 0;
    }
    const loaded = loadAliasFile(a.file);
    if (loaded.kind === 'error') {
      io.stderr.write(`aliascheck: ${loaded.issues.map(formatIssue).join('; ')}\n`);
      return 2;
    }
    if (a.verbose) for (const issue of loaded.issues) io.stderr.write(`aliascheck: ${formatIssue(issue)}\n`);
    const entry = loaded.map.get(a.name);
    if (entry) {
      await writeOut(io.stdout, formatTargets(entry.targets) + '\n');
      return 0;
    }
    if (!a.nopwd) {
      const account = await (accounts ?? createAccounts(null)).lookup(a.name);
      if (account) {
        await writeOut(io.stdout, account.name + '\n');
        return 0;
      }
    }
    return 1;
  } catch (err) {
    if (err instanceof Usage) io.stderr.write(`aliascheck: ${err.message}\n${ALIASCHECK_USAGE}\n`);
    else io.stderr.write(`aliascheck: ${(err as Error).message}\n`);
    return 2;
  }
}

export function main(argv: string[], io: ToolIo): Promise<number> {
  return runAliascheck(argv, io);
}
