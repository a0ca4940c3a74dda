/**
 * argv.ts — a utility's command line read as POSIX getopt reads it: options first, and from the
 * first operand (or `--`) on everything is an operand, even when it starts with `-`. Scripts pass
 * client data as operands (`match -q '*@x' "$SENDER"`), so a sender `-i@x` must stay a string.
 *
 *   parseCommandLine(argv, options) -> {values, operands} | {error}
 *       options as node:util parseArgs takes them (short letters group: `-qi`, `-x67`, `-x 67`,
 *       `--expire=+1d`); as in getopt, the word after an option that wants a value is that value,
 *       even when it starts with `-`; an unknown option or a missing value is an error (usage, exit 2)
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export function parseCommandLine(
  words: readonly string[],
  options: OptionSpec,
): { values: OptionValues; operands: string[] } | { error: string } {
  const argv = joinOptionArguments(words, options);
  // a first, lenient pass only finds where the operands start (the tokens before it do not
  // depend on what follows), then the options before it are parsed strictly
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator');
  const end = first?.index ?? argv.length;
  const operands = argv.slice(first?.kind === 'option-terminator' ? end + 1 : end);
  try {
    const { values } = parseArgs({ args: argv.slice(0, end), options, strict: true, allowPositionals: false });
    return { values: values as OptionValues, operands };
  } catch (err) {
    return { error: (err as Error).message.replace(/\. To specify a positional argument.*$/s, '') };
  }
}

/**
 * getopt takes the argument after an option that wants a value as that value, even when it starts
 * with "-" (`match -p -x* STR`, `dbutil --add -3 …`); parseArgs would call it ambiguous. So such a
 * pair is written as one word first: `-p-x*`, `--add=-3`.
 */
function joinOptionArguments(argv: readonly string[], options: OptionSpec): string[] {
  const wantsValue = (short: string): boolean =>
    Object.values(options).some((o) => o.short === short && o.type === 'string');
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    out.push(a);
    if (a === '--' || !a.startsWith('-') || a === '-') {
      out.push(...argv.slice(i + 1));
      break;
    }
    const next = argv[i + 1];
    if (next === undefined) continue;
    const long = /^--([^=]+)$/.exec(a);
    if (long) {
      if (options[long[1]!]?.type === 'string') out[out.length - 1] = `${a}=${argv[++i]}`;
      continue;
    }
    if (a.startsWith('--')) continue;
    // a group of short options: the first that wants a value takes the rest of the word, or the next word
    const letters = [...a.slice(1)];
    const at = letters.findIndex(wantsValue);
    if (at === letters.length - 1) out[out.length - 1] = `${a}${argv[++i]}`;
  }
  return out;
}
