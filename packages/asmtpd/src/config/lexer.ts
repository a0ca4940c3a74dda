/**
 * Lexer for asmtpd.conf (spec asmtpd.md §3): text → directive lines with file:line.
 *
 * Public: lexConfig(text, file) → { directives: DirectiveLine[], errors: ConfigIssue[] }.
 *
 * Syntax:
 *   - one directive per line: `Name value…`, words separated by blanks (spaces, tabs);
 *   - a line whose first non-blank character is `#` is a comment; blank lines are ignored.
 *     `#` is a comment only at the start of a directive: inside a line, or on a line that
 *     continues a directive, it is an ordinary character;
 *   - a `\` at the end of a line (trailing blanks allowed) joins the next line: the
 *     backslash and the line break count as one blank;
 *   - double quotes group words (`"a b"` is one word, `""` an empty word); quotes may touch
 *     other characters (`a"b c"` is `ab c`);
 *   - a backslash escapes the one character after it, inside or outside quotes (`\"`, `\\`, `\ `).
 * A directive's line is the line where it starts. An unterminated quote is an error for that
 * directive (the directive is dropped, lexing goes on with the next line).
 * A UTF-8 byte order mark at the start is ignored; CRLF line ends are accepted.
 */
import type { ConfigIssue } from './issues.js';

export interface DirectiveLine {
  file: string;
  /** line where the directive starts (1-based) */
  line: number;
  /** the directive name as written (matching is case-insensitive, done by the loader) */
  name: string;
  /** the value words after the name, quotes and escapes resolved */
  values: string[];
}

export interface LexResult {
  directives: DirectiveLine[];
  errors: ConfigIssue[];
}

const BLANK = /[ \t\f\v]/;

/** Split asmtpd.conf text into directive lines. */
export function lexConfig(text: string, file: string): LexResult {
  const physicalLines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const directives: DirectiveLine[] = [];
  const errors: ConfigIssue[] = [];
  let next = 0;

  while (next < physicalLines.length) {
    const startLine = next + 1;
    let line = physicalLines[next++] ?? '';
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) continue;

    const words: string[] = [];
    let word = '';
    let inWord = false;
    let inQuote = false;
    const endWord = (): void => {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    };

    for (let i = 0; ; ) {
      if (i >= line.length) break;
      const c = line[i] as string;
      if (c === '\\') {
        const rest = line.slice(i + 1);
        if (rest.trim() === '') {
          // continuation: the backslash and line break are one blank
          if (next >= physicalLines.length) break; // "\" on the last line: nothing to join
          line = physicalLines[next++] ?? '';
          i = 0;
          if (inQuote) word += ' ';
          else endWord();
          continue;
        }
        word += rest[0];
        inWord = true;
        i += 2;
        continue;
      }
      if (inQuote) {
        if (c === '"') inQuote = false;
        else word += c;
        i++;
        continue;
      }
      if (c === '"') {
        inQuote = true;
        inWord = true;
      } else if (BLANK.test(c)) {
        endWord();
      } else {
        word += c;
        inWord = true;
      }
      i++;
    }

    if (inQuote) {
      errors.push({ file, line: startLine, message: 'unterminated double quote' });
      continue;
    }
    endWord();
    const [name, ...values] = words;
    if (name === undefined) continue; // only blanks and continuations
    directives.push({ file, line: startLine, name, values });
  }
  return { directives, errors };
}
