import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import {
  announcedExtensions,
  announcedSizeLimit,
  createNodemailerConnection,
  envelopeSoFar,
  openDataStream,
  rewriteCommandLines,
  sendCommandLine,
  setDataEnvelope,
  type NodemailerConnection,
} from './nodemailer-internals.js';
import { startDownstream } from '../testing/relay.js';

// ---- tripwire: what nodemailer-internals.ts reads, calls or replaces in the installed nodemailer ----

const FILE = 'src/smtp-client/nodemailer-internals.ts';
/** The version the hashes below were taken from. */
const PINNED = '10.6.0';
/** sha256 of Function.prototype.toString() of each SMTPConnection method called or replaced, as in nodemailer PINNED. */
const CALLED: Record<string, string> = {
  _sendCommand: '9254556f26341f21e6cc540b5893aeb1860132a10f6fd782022866e508af7d20',
  _createSendStream: '62f327855dc9522dad36949e2cf0e529e1c28292feceef23d42fd1a49277f22a',
};
/** The methods that fill or consume the private fields read (_supportedExtensions, _maxAllowedSize, _envelope, _responseActions). */
const RELIED_ON: Record<string, string> = {
  _processResponse: 'b39789c0483ba9ec930db383400a0c58572aa7729cfc22762cb00d09325b1115',
  _parseEhloExtensions: 'd3ae5ed55fbda4f574a4ccd341930b9a9426a53a9e7f9374494742f727ed4716',
  _setEnvelope: '3250b192ad6b93e0907c88db6d04954d87e103d755e95585a01d683f91c82269',
  _actionRCPT: 'c354118fa1e061e2eb4e770af85c7add5310a5c0d1efa53837a929466228463d',
  _actionSMTPStream: '0485bdd0da8f83c82bb11af8e38bc222f6ac877e6f25e8654b8551c712654edf',
  _actionLMTPStream: '6aba762372c449685e2236846c12e7e871cc7310d83b3c87320d861d5c5fa6ff',
};

const installed = (createRequire(import.meta.url)('nodemailer/package.json') as { version: string }).version;

function sourceHash(method: string): string {
  const fn = (SMTPConnection.prototype as unknown as Record<string, unknown>)[method];
  assert.equal(typeof fn, 'function', `nodemailer ${installed} has no SMTPConnection.${method}: re-read ${FILE}`);
  return createHash('sha256')
    .update((fn as () => void).toString())
    .digest('hex');
}

test(`tripwire: every nodemailer method nodemailer-internals.ts calls or replaces is the one of nodemailer ${PINNED}`, () => {
  for (const [method, hash] of Object.entries(CALLED)) {
    assert.equal(
      sourceHash(method),
      hash,
      `nodemailer ${installed} changed SMTPConnection.${method}: re-read its use in ${FILE} and update the hash (taken from ${PINNED})`,
    );
  }
});

test(`tripwire: every nodemailer method behind the fields nodemailer-internals.ts reads is the one of nodemailer ${PINNED}`, () => {
  for (const [method, hash] of Object.entries(RELIED_ON)) {
    assert.equal(
      sourceHash(method),
      hash,
      `nodemailer ${installed} changed SMTPConnection.${method}: re-read what ${FILE} expects of it and update the hash (taken from ${PINNED})`,
    );
  }
});

test('tripwire: the private members nodemailer-internals.ts uses exist with the expected types, and each accessor works', async () => {
  const downstream = await startDownstream({ sizeLimitBytes: 12345 });
  const smtp = await connected(downstream.port);
  const where = (member: string): string =>
    `nodemailer ${installed}: SMTPConnection.${member} is not what ${FILE} expects: re-read it`;
  const raw = smtp as unknown as Record<string, unknown>;
  assert.ok(Array.isArray(raw._supportedExtensions), where('_supportedExtensions'));
  assert.equal(typeof raw._maxAllowedSize, 'number', where('_maxAllowedSize'));
  assert.ok(Array.isArray(raw._responseActions), where('_responseActions'));
  assert.equal(raw._envelope, false, where('_envelope'));
  assert.equal(typeof raw._sendCommand, 'function', where('_sendCommand'));
  assert.equal(typeof raw._createSendStream, 'function', where('_createSendStream'));

  assert.ok(announcedExtensions(smtp).includes('PIPELINING'), where('_supportedExtensions (EHLO keywords)'));
  assert.equal(announcedSizeLimit(smtp), 12345, where('_maxAllowedSize (SIZE)'));
  assert.deepEqual(envelopeSoFar(smtp), { accepted: [], rejectedErrors: [] });

  // a transaction step by step: the rewritten MAIL FROM, RCPT, DATA, the body through the data stream
  rewriteCommandLines(smtp, (line) => (line.startsWith('MAIL FROM:') ? `${line} BODY=8BITMIME` : line));
  assert.match(await command(smtp, 'MAIL FROM:<a@example.test>'), /^250 /);
  assert.match(await command(smtp, 'RCPT TO:<b@example.test>'), /^250 /);
  assert.match(await command(smtp, 'DATA'), /^354 /);
  setDataEnvelope(smtp, ['b@example.test']);
  const reply = await new Promise<string>((resolve, reject) => {
    const sink = openDataStream(smtp, (err, line) => (err ? reject(new Error(err.message)) : resolve(line ?? '')));
    sink.end(Buffer.from('Subject: t\r\n\r\n.dot\r\n'));
  });
  assert.match(reply, /^250 /, where('_createSendStream (reply to the final dot)'));
  assert.equal(downstream.received.length, 1);
  assert.equal(downstream.received[0]!.mailArgs.BODY, '8BITMIME', where('_sendCommand (rewritten line)'));
  assert.equal(
    downstream.received[0]!.data.toString('latin1'),
    'Subject: t\r\n\r\n.dot\r\n',
    where('_createSendStream (dot-stuffing)'),
  );
  smtp.close();
  await downstream.close();
});

function connected(port: number): Promise<NodemailerConnection> {
  const smtp = createNodemailerConnection({ host: '127.0.0.1', port, ignoreTLS: true, logger: false });
  smtp.on('error', () => {});
  return new Promise((resolve, reject) => smtp.connect((err) => (err ? reject(err) : resolve(smtp))));
}

function command(smtp: NodemailerConnection, line: string): Promise<string> {
  return new Promise((resolve) => sendCommandLine(smtp, line, resolve));
}
