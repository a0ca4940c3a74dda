import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refusesSender } from './backend-verify.js';

test('a RCPT refusal about the null sender is told from one about the recipient', () => {
  const rows: [string, boolean][] = [
    // Postfix, smtpd_delay_reject yes: the sender's refusal comes at RCPT
    ['554 5.7.1 <>: Sender address rejected: Access denied', true],
    ['550 5.1.7 <>: the null sender is not accepted', true],
    ['553 5.1.8 bad sender domain', true],
    ['550 <>: no bounces here', true],
    ['550 5.1.1 <bob@a.test>: Recipient address rejected: User unknown in virtual mailbox table', false],
    ['550 5.7.1 <bob@a.test>: Relay access denied', false],
    ['550-5.1.1 no such user\r\n550 5.1.1 Sender address rejected only on the second line', false],
  ];
  for (const [line, want] of rows) assert.equal(refusesSender(line), want, line);
});
