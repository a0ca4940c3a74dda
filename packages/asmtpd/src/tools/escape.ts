/**
 * escape.ts — the `escape` utility (docs/man/escape.1.md; spec avenger.md §5): print the argument
 * with every character the shell treats specially preceded by a backslash, so that one more pass
 * of a shell gives the argument back as one word.
 *
 *   main(argv, io) -> exit code      escape STRING...   (several: escaped each, joined by spaces)
 *   shellEscape(s) -> string
 *
 * Left as they are: letters, digits, `@ % + , . / : _ -` and every non-ASCII character (none is
 * special to sh); every other character gets a backslash, except a newline, which a backslash
 * would remove (line continuation): it is written '<newline>'. So an ordinary address comes out
 * unchanged, and `$(reboot)@x` comes out `\$\(reboot\)@x`.
 *
 * Mail Avenger passed bodytest arguments through a shell a second time, which is what escape was
 * for; asmtpd never does (docs/avenger.md "Body tests"), so in asmtpd the output is the argument.
 */
import { writeOut, type ToolIo } from './tool-io.js';

export const ESCAPE_USAGE = `usage: escape STRING...
  Print STRING with a backslash before every character special to the shell
  (letters, digits, non-ASCII and @ % + , . / : _ - are left as they are).`;

const SAFE = /^[A-Za-z0-9@%+,./:_-]$|^[^\x00-\x7f]$/u;

export function shellEscape(s: string): string {
  let out = '';
  for (const c of s) out += SAFE.test(c) ? c : c === '\n' ? "'\n'" : `\\${c}`;
  return out;
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    await writeOut(io.stdout, `${ESCAPE_USAGE}\n`);
    return 0;
  }
  const args = argv[0] === '--' ? argv.slice(1) : argv;
  if (args.length === 0) {
    await writeOut(io.stderr, `escape: no STRING\n${ESCAPE_USAGE}\n`);
    return 2;
  }
  await writeOut(io.stdout, `${args.map(shellEscape).join(' ')}\n`);
  return 0;
}
