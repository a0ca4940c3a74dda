import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lexConfig } from './lexer.js';

/** [name, input, expected directives as [line, name, ...values]] */
const CASES: [string, string, (string | number)[][]][] = [
  ['simple', 'SMTPPort 25\n', [[1, 'SMTPPort', '25']]],
  ['blanks and tabs separate words', '  BindAddr\t127.0.0.1   ::1  \n', [[1, 'BindAddr', '127.0.0.1', '::1']]],
  ['comment lines and blank lines', '# a comment\n\n   # indented comment\nMaxRcpts 5\n', [[4, 'MaxRcpts', '5']]],
  ['# inside a line is text', 'SMTPPort 25 # port\n', [[1, 'SMTPPort', '25', '#', 'port']]],
  [
    'double quotes group words',
    'Sendmail "/opt/my mailer/send" -f "%s"\n',
    [[1, 'Sendmail', '/opt/my mailer/send', '-f', '%s']],
  ],
  ['empty quotes give an empty word', 'X ""\n', [[1, 'X', '']]],
  ['quotes touch other characters', 'X a"b c"d\n', [[1, 'X', 'ab cd']]],
  ['backslash escapes a blank', 'X a\\ b c\n', [[1, 'X', 'a b', 'c']]],
  ['backslash escapes a quote and a backslash', 'X \\"q\\" \\\\\n', [[1, 'X', '"q"', '\\']]],
  ['backslash inside quotes', 'X "say \\"hi\\""\n', [[1, 'X', 'say "hi"']]],
  [
    'continuation joins lines as one blank',
    'RelayNet 10.0.0.0/8 \\\n   192.168.0.0/16\nMaxRcpts 5\n',
    [
      [1, 'RelayNet', '10.0.0.0/8', '192.168.0.0/16'],
      [3, 'MaxRcpts', '5'],
    ],
  ],
  ['continuation without a blank before it still separates', 'X a\\\nb\n', [[1, 'X', 'a', 'b']]],
  ['continuation with trailing blanks', 'X a \\  \n b\n', [[1, 'X', 'a', 'b']]],
  [
    'several continuations keep the first line',
    '\n\nX a \\\n b \\\n c\nY d\n',
    [
      [3, 'X', 'a', 'b', 'c'],
      [6, 'Y', 'd'],
    ],
  ],
  ['a continued line starting with # is text', 'X a \\\n#b\n', [[1, 'X', 'a', '#b']]],
  ['continuation inside quotes is one blank', 'X "a\\\nb"\n', [[1, 'X', 'a b']]],
  ['backslash on the last line', 'X a \\', [[1, 'X', 'a']]],
  [
    'CRLF line ends',
    'X a\r\nY b\r\n',
    [
      [1, 'X', 'a'],
      [2, 'Y', 'b'],
    ],
  ],
  ['byte order mark', '\uFEFFX a\n', [[1, 'X', 'a']]],
  ['name without value', 'HoldOnFailure\n', [[1, 'HoldOnFailure']]],
  ['empty text', '', []],
];

for (const [name, input, expected] of CASES) {
  test(`lexer: ${name}`, () => {
    const { directives, errors } = lexConfig(input, 'f.conf');
    assert.deepEqual(errors, []);
    assert.deepEqual(
      directives.map((d) => [d.line, d.name, ...d.values]),
      expected,
    );
    for (const d of directives) assert.equal(d.file, 'f.conf');
  });
}

test('lexer: an unterminated quote is an error at the directive line; lexing goes on', () => {
  const { directives, errors } = lexConfig('A 1\nB "open \\\nstill open\nC 3\n', 'f.conf');
  assert.deepEqual(errors, [{ file: 'f.conf', line: 2, message: 'unterminated double quote' }]);
  assert.deepEqual(
    directives.map((d) => [d.line, d.name]),
    [
      [1, 'A'],
      [4, 'C'],
    ],
  );
});
