import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePathCommand } from './path.js';

const OK: Array<[string, string, string, Record<string, string | true> | false, boolean?]> = [
  ['MAIL FROM', 'MAIL FROM:<a@b.example>', 'a@b.example', false],
  ['MAIL FROM', 'mail from: <a@b.example> SIZE=100 BODY=8BITMIME', 'a@b.example', { SIZE: '100', BODY: '8BITMIME' }],
  ['MAIL FROM', 'MAIL FROM:<>', '', false],
  ['MAIL FROM', 'MAIL FROM:<> SMTPUTF8', '', { SMTPUTF8: true }],
  ['RCPT TO', 'RCPT TO:<"john smith"@example.org>', '"john smith"@example.org', false],
  ['RCPT TO', 'RCPT TO:<"a\\"b"@example.org>', '"a\\"b"@example.org', false],
  ['RCPT TO', 'RCPT TO:<`id`@a.example>', '`id`@a.example', false],
  ['RCPT TO', 'RCPT TO:<Postmaster>', 'Postmaster', false],
  ['RCPT TO', 'RCPT TO:<@relay.example:u@d.example>', 'u@d.example', false, true],
  ['RCPT TO', 'RCPT TO:<@a.example,@b.example:u@d.example>', 'u@d.example', false, true],
  ['RCPT TO', 'RCPT TO:<u@other@local.example>', 'u@other@local.example', false],
  ['RCPT TO', 'RCPT TO:<u@[192.0.2.1]>', 'u@[192.0.2.1]', false],
  ['RCPT TO', 'RCPT TO:<u@[IPv6:2001:db8::1]>', 'u@[IPv6:2001:db8::1]', false],
  ['RCPT TO', 'RCPT TO:<jörg@exämple.de>', 'jörg@exämple.de', false],
  ['RCPT TO', 'RCPT TO:<u@local.example.>', 'u@local.example.', false],
  ['MAIL FROM', 'MAIL FROM:<a;id@a.example>', 'a;id@a.example', false],
  ['MAIL FROM', 'MAIL FROM:<$(id)@a.example>', '$(id)@a.example', false],
];

for (const [verb, line, address, args, sourceRoute] of OK) {
  test(`parses ${line}`, () => {
    const r = parsePathCommand(verb as 'MAIL FROM' | 'RCPT TO', line);
    assert.ok(!('error' in r), JSON.stringify(r));
    assert.equal(r.address, address);
    assert.deepEqual(r.args, args);
    assert.equal(r.sourceRoute, sourceRoute ?? false);
  });
}

const BAD: Array<[string, string]> = [
  ['MAIL FROM', 'MAIL FROM a@b'],
  ['MAIL FROM', 'MAIL FROM:a@b'],
  ['MAIL FROM', 'MAIL FROM:<a@b'],
  ['RCPT TO', 'RCPT TO:<a b@c.example>'],
  ['RCPT TO', 'RCPT TO:<$(touch /tmp/x)@a.example>'],
  ['RCPT TO', 'RCPT TO:<a@b\r\nDATA>'],
  ['RCPT TO', 'RCPT TO:<a@b.example> ENVID=x+0D+0Ay'],
  ['RCPT TO', 'RCPT TO:<a@>'],
  ['RCPT TO', 'RCPT TO:<@b.example>'],
  ['RCPT TO', 'RCPT TO:<"unterminated@b.example>'],
  ['RCPT TO', 'RCPT TO:<a@b.example>NOTIFY=NEVER'],
  ['RCPT TO', `RCPT TO:<${'a'.repeat(250)}@b.example>`],
  ['MAIL FROM', 'RCPT TO:<a@b.example>'],
];

for (const [verb, line] of BAD) {
  test(`refuses ${JSON.stringify(line).slice(0, 60)}`, () => {
    const r = parsePathCommand(verb as 'MAIL FROM' | 'RCPT TO', line);
    assert.ok('error' in r, JSON.stringify(r));
  });
}

// issue 14: a duplicate parameter is not an address error (was: refused like one, which made
// smtp-server answer "501 5.1.7 Bad sender address syntax"); it is reported for smtp-server's 501
test('a parameter given twice is reported as duplicate (the first value kept)', () => {
  const r = parsePathCommand('MAIL FROM', 'MAIL FROM:<a@b.example> SIZE=10 size=20');
  assert.ok(!('error' in r), JSON.stringify(r));
  assert.equal(r.duplicate, 'SIZE');
  assert.deepEqual(r.args, { SIZE: '10' });
});
