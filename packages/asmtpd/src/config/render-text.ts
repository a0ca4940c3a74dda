/**
 * The prose of the generated configuration docs (render.ts puts the tables around it).
 * Keep it about rules that hold for every directive; what is specific to one directive
 * belongs in its row in directives.ts.
 *
 * Public: SAMPLE_CONF_HEADER, CONFIGURATION_DOC_INTRO, CONFIGURATION_DOC_RULES (arrays of lines).
 */

export const SAMPLE_CONF_HEADER: readonly string[] = [
  '# asmtpd.conf: configuration of asmtpd, the filtering SMTP server.',
  '#',
  '# One directive per line: Name value...  Names are case-insensitive.',
  '# A line whose first non-blank character is # is a comment; # elsewhere is text.',
  '# A \\ at the end of a line joins the next line. Double quotes group words',
  '# ("two words"); a backslash escapes one character (\\" \\\\).',
  '# Booleans: yes/no, on/off, true/false, 1/0. Durations: seconds, or a number',
  '# with s, m, h or d (30s, 5m). Sizes: bytes, or a number with k, M or G (50M).',
  '# Directives that may repeat take several values, on one line or on several;',
  '# giving one replaces its default list. Any other directive may appear once.',
  '#',
  '# Every directive is listed below, commented out, with its default (or an',
  '# example when the default is computed or empty). Remove the leading # to set it.',
  '# Check the file with: asmtpd --check -f /etc/avenger/asmtpd.conf',
  '# Reference: docs/configuration.md. This sample is generated from the',
  '# directive table of asmtpd (packages/asmtpd/src/config/directives.ts).',
];

export const CONFIGURATION_DOC_INTRO: readonly string[] = [
  'asmtpd reads `/etc/avenger/asmtpd.conf`, or the file given with `-f FILE`. Every directive has a',
  'default: an empty file is a complete configuration (mail is accepted for the host name and kept in',
  'the hold queue). [etc/asmtpd.conf](../etc/asmtpd.conf) is a sample listing every directive, commented out.',
  '',
  '`asmtpd --check [-f FILE]` validates the file and the files it names, prints each problem as',
  '`FILE:LINE: message` (`FILE: message` for the file as a whole) and exits 0 only when there is no',
  'error; warnings are printed as `FILE:LINE: warning: message`. The daemon refuses to start on the',
  'same errors, and on SIGHUP it keeps the old configuration when the new one has errors.',
];

export const CONFIGURATION_DOC_RULES: readonly string[] = [
  '## Syntax',
  '',
  '- One directive per line: `Name value…`. Names are case-insensitive: `smtpport 2525` sets `SMTPPort`.',
  '- A line whose first non-blank character is `#` is a comment; blank lines are ignored. Elsewhere `#` is',
  '  ordinary text, so `SMTPPort 25 # port` is an error (too many values): put comments on their own line.',
  '- A `\\` at the end of a line (trailing blanks allowed) joins the next line: the backslash and the line',
  '  break count as one blank. A line that continues a directive is never a comment.',
  '- Double quotes group words: `"a b"` is one word and `""` an empty word; quotes may touch other',
  '  characters (`a"b c"` is the word `ab c`).',
  '- A backslash escapes the one character after it, inside quotes or not: `\\"`, `\\\\`, `\\ ` (a blank).',
  '- A problem is reported at the line where its directive starts.',
  '',
  '### Repeating directives',
  '',
  'A directive marked *may repeat* (a value shown as `address...`) takes one or more values per line and may',
  'appear on several lines; all the values add up. Giving it at all replaces its default list: with',
  '`RelayNet 10.0.0.0/8` alone, 127.0.0.0/8 may no longer relay. Any other directive takes exactly one',
  'value (Sendmail: one command line) and may appear once; a second occurrence is an error.',
  '',
  '### Delivery: RelayHost, Sendmail or the hold queue',
  '',
  'Accepted mail goes to the MTA named by `RelayHost` (SMTP or LMTP), or to the `Sendmail` command; setting',
  'both is an error. With neither, the daemon is still complete: accepted mail is kept in the `HoldQueue`',
  'Maildir (a first run, a backup MX). With `HoldOnFailure yes`, a temporary failure of the MTA also puts',
  'the message in the hold queue, and the client is told 250. `Sendmail` substitutes `%s` with the sender',
  'and appends the recipients; its exit status 0 means accepted, 75 try again later, anything else refused.',
  '',
  '### Errors and warnings',
  '',
  'Errors (the file is refused; every error is reported, not only the first): an unknown directive (with',
  'the closest known name when it looks like a typo), a directive of the design that this version does not',
  'support yet, a missing value, too many values, a bad value (saying what was expected), a directive that',
  'may appear once given twice, `RelayHost` together with `Sendmail`, a `PasswdFile` that does not exist,',
  'a `Sendmail` program that does not exist or is not executable, an unterminated double quote.',
  '`DBDir` and `HoldQueue` need not exist: the daemon creates them at start.',
  '',
  'Warnings (the file is accepted): a network with host bits set (`10.1.2.3/8` is used as `10.0.0.0/8`),',
  '`HoldOnFailure yes` without `RelayHost` or `Sendmail` (mail is held anyway), no `Hostname` while the',
  'system host name is not fully qualified.',
];
