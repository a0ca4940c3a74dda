import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeSendmailCommand, findProgram, parseSendmailCommand } from './sendmail-command.js';
import { parseConfigText } from './load.js';

const dir = mkdtempSync(join(tmpdir(), 'sendmail-command-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const find = (name: string): string | null => (name === 'sendmail' ? '/usr/sbin/sendmail' : null);
const parse = (line: string) => parseSendmailCommand(line.split(' '), find);

test("Mail Avenger's line: the program found, -oi kept or added, then -f SENDER -- before the recipients", () => {
  assert.deepEqual(parse('sendmail -oi'), {
    kind: 'ok',
    value: ['/usr/sbin/sendmail', '-oi', '-f', '%s', '--'],
  });
  assert.deepEqual(parse('sendmail'), { kind: 'ok', value: ['/usr/sbin/sendmail', '-oi', '-f', '%s', '--'] });
  assert.deepEqual(parse('sendmail -i -C /etc/postfix-2'), {
    kind: 'ok',
    value: ['/usr/sbin/sendmail', '-i', '-C', '/etc/postfix-2', '-f', '%s', '--'],
  });
  assert.deepEqual(parse('/opt/exim/bin/exim -oi --'), {
    kind: 'ok',
    value: ['/opt/exim/bin/exim', '-oi', '-f', '%s', '--'],
  });
});

test('a command with %s is used as written (a warning without -oi or -i)', () => {
  assert.deepEqual(parse('/usr/sbin/sendmail -oi -f %s --'), {
    kind: 'ok',
    value: ['/usr/sbin/sendmail', '-oi', '-f', '%s', '--'],
  });
  assert.deepEqual(parse('sendmail -f%s'), {
    kind: 'ok',
    value: ['/usr/sbin/sendmail', '-f%s'],
    warning: 'without -oi (or -i) a line holding a single dot ends the message',
  });
});

test('refused: a relative path, a name found nowhere, -t, and without %s: -f, -r and words after --', () => {
  const errors: [string, RegExp][] = [
    ['bin/sendmail -oi', /the program is an absolute path or a name looked up in \/usr\/local\/sbin:/],
    ['./sendmail', /absolute path or a name/],
    [
      'nosuchmailer -oi',
      /^nosuchmailer: not found in \/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/,
    ],
    ['sendmail -oi -t', /^-t would take the recipients from the message headers/],
    ['sendmail -t -f %s', /^-t would/],
    [
      'sendmail -oi -f bounces@example.org',
      /^-f: asmtpd passes the envelope sender itself \(-f SENDER\); to place it yourself, write -f %s$/,
    ],
    ['sendmail -fbounces@example.org', /^-fbounces@example\.org: asmtpd passes/],
    ['sendmail -r x@y', /^-r: asmtpd passes/],
    ['sendmail -oi -- postmaster', /words after "--" would be recipients/],
  ];
  for (const [line, why] of errors) {
    const r = parse(line);
    assert.equal(r.kind, 'error', line);
    assert.match((r as { message: string }).message, why, line);
  }
  assert.equal(parseSendmailCommand([], find).kind, 'error');
});

test('findProgram looks in the given directories in order, executable regular files only', () => {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'mailer'), '#!/bin/sh\n', { mode: 0o644 }); // not executable
  mkdirSync(join(a, 'dir-mailer'));
  writeFileSync(join(b, 'mailer'), '#!/bin/sh\n');
  chmodSync(join(b, 'mailer'), 0o755);
  if (process.getuid?.() !== 0) assert.equal(findProgram('mailer', [a, b]), join(b, 'mailer'));
  assert.equal(findProgram('dir-mailer', [a, b]), null);
  assert.equal(findProgram('absent', [a, b]), null);
  // the default list: sh is in /usr/bin or /bin on every system this runs on
  assert.match(findProgram('sh') ?? '', /^\/(usr\/)?bin\/sh$/);
});

test('describeSendmailCommand: what --check prints; the directive through the loader', () => {
  assert.equal(
    describeSendmailCommand(['/usr/sbin/sendmail', '-oi', '-f', '%s', '--']),
    '/usr/sbin/sendmail -oi -f SENDER -- RECIPIENT...',
  );
  assert.equal(describeSendmailCommand(['/opt/my mailer', '-f%s']), '"/opt/my mailer" -fSENDER RECIPIENT...');
  const program = join(dir, 'sendmail');
  writeFileSync(program, '#!/bin/sh\n');
  chmodSync(program, 0o755);
  const r = parseConfigText(`Sendmail ${program} -oi\n`, 'f.conf', { systemHostname: 'mx.example.org' });
  assert.equal(r.kind, 'ok');
  assert.deepEqual(r.kind === 'ok' && r.config.sendmail, [program, '-oi', '-f', '%s', '--']);
});
