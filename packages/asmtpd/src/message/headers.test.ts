import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foldHeader, headerSafe } from './fold.js';
import { receivedHeader, protocolName, rfc5322Date } from './received.js';
import { xAvengerHeader } from './x-avenger.js';

test('folded lines never exceed 78 columns and unfold to the original', () => {
  const items = Array.from({ length: 12 }, (_, i) => `key${i}=value-number-${i}`);
  const h = foldHeader('X-Test', items);
  for (const line of h.split('\r\n')) assert.ok(line.length <= 78, line);
  assert.equal(h.replace(/\r\n\t/g, ' ').trimEnd(), `X-Test: ${items.join('; ')}`);
});

test('headerSafe drops ; and control characters', () => {
  assert.equal(headerSafe('a;b\r\nc'), 'a?b??c');
});

test('X-Avenger carries version, receiver, client-ip, client-port in order', () => {
  assert.equal(
    xAvengerHeader({ version: '0.1.0', receiver: 'mx.example', clientIp: '192.0.2.1', clientPort: 4321 }),
    'X-Avenger: version=0.1.0; receiver=mx.example; client-ip=192.0.2.1;\r\n\tclient-port=4321\r\n',
  );
});

test('X-Avenger rcpt-verify: each RCPT_VERIFY value once, never an address', () => {
  const h = xAvengerHeader({
    version: '0.1.0',
    receiver: 'mx.example',
    clientIp: '192.0.2.1',
    clientPort: 4321,
    rcptVerify: ['valid', 'cached-valid'],
  });
  assert.match(h.replace(/\r\n\t/g, ' '), /; rcpt-verify=valid cached-valid\r\n$/);
});

test('Received: protocol names per RFC 3848 / 6531 and a sanitised HELO', () => {
  assert.equal(protocolName({ proto: 'SMTP', tls: null, authenticated: false, smtputf8: false }), 'SMTP');
  assert.equal(
    protocolName({ proto: 'ESMTP', tls: { version: 'TLSv1.3', cipher: 'X' }, authenticated: true, smtputf8: false }),
    'ESMTPSA',
  );
  assert.equal(protocolName({ proto: 'ESMTP', tls: null, authenticated: false, smtputf8: true }), 'UTF8SMTP');
  const h = receivedHeader({
    helo: 'evil\r\nX-Injected: 1',
    clientName: null,
    clientIp: '2001:db8::1',
    hostname: 'mx.example',
    version: '0.1.0',
    proto: 'ESMTP',
    tls: null,
    authenticated: false,
    smtputf8: false,
    id: 'ABC',
    recipient: 'a@b.example',
    date: new Date(Date.UTC(2026, 10, 21, 10, 0, 0)),
  });
  assert.ok(!/\r\nX-Injected/.test(h));
  assert.equal(
    h,
    'Received: from evil??X-Injected:?1 ([IPv6:2001:db8::1])\r\n\tby mx.example (asmtpd 0.1.0) with ESMTP id ABC for <a@b.example>;\r\n\t' +
      rfc5322Date(new Date(Date.UTC(2026, 10, 21, 10, 0, 0))) +
      '\r\n',
  );
  for (const line of h.split('\r\n')) assert.ok(line.length <= 78);
});
