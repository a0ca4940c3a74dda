/**
 * Framing (issue 7, item 2): what the December 2023 SMTP smuggling research and its relatives
 * try, against a daemon whose downstream records the DATA section exactly as sent on the wire
 * (support/wire-sink.ts), so "no injected message ever reaches the downstream" is checked at the
 * byte level: messages are counted exactly, every command the relay sent is kept, and the bytes
 * must not hold a bare CR/LF or NUL that a lenient downstream could read as an end of data.
 *
 * smuggling.test.ts has the six classic variants in reject mode (BareLineEndings reject, the
 * default); this file adds the rest of the bare CR/LF × dot × bare CR/LF combinations and the NUL
 * variants, all of them again with `BareLineEndings normalize`, segmented writes, dot-stuffing on
 * the relay side (including at the 64 KiB read boundaries of the spool), pipelining after the end
 * of data, NUL and 8-bit bytes in commands, overlong lines, and BDAT (not offered).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startWireSink, wireProblems, longestLine, type WireSink, type WireMessage } from '../support/wire-sink.js';
import { SmtpClient, dotStuff } from '../support/smtp-client.js';
import { startPostfix, requirePostfix } from '../support/postfix.js';

const INJECTED_FROM = 'smuggled@injected.test';
const INJECTION = `MAIL FROM:<${INJECTED_FROM}>\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nsmuggled\r\n.\r\n`;
const BARE = '554 5.6.0 message contains a bare CR or LF; lines must end with CRLF';
const NUL = '554 5.6.0 message contains NUL characters';
const NOOP_OK = '250 2.0.0 OK';

/** Every look-alike end of data: bare CR/LF combinations around the dot, and NUL next to it. */
function endOfDataLookAlikes(): string[] {
  const ends = ['\n', '\r', '\r\n', '\n\r', '\r\r\n'];
  const out: string[] = [];
  for (const p of ends) for (const s of ends) out.push(p + '.' + s);
  out.push('\r\n\x00.\r\n', '\r\n.\x00\r\n', '\n..\n', '\r..\r', '\r\n..\n', '\n\n.\n\n');
  // a genuine CRLF.CRLF really ends the message: what follows is the client's own next command
  return out.filter((v) => !v.includes('\r\n.\r\n'));
}
const LOOK_ALIKES = endOfDataLookAlikes();
/** covered in reject mode by smuggling.test.ts */
const IN_SMUGGLING_TEST = ['\n.\n', '\n.\r\n', '\r.\r', '\r\n.\r', '\r\n.\n', '\r.\r\n'];
const show = (s: string): string => JSON.stringify(s).slice(1, -1);

let wR: WireSink;
let wN: WireSink;
let dR: Daemon;
let dN: Daemon;
before(async () => {
  wR = await startWireSink();
  wN = await startWireSink();
  // 127.0.0.1 may relay; 127.0.0.2 is outside RelayNet
  const common = 'RelayNet 127.0.0.1/32\nMaxErrors 1000\nMaxClientsPerIP 50';
  dR = await startDaemon({ conf: `${common}\nRelayHost 127.0.0.1:${wR.port}` });
  dN = await startDaemon({ conf: `${common}\nRelayHost 127.0.0.1:${wN.port}\nBareLineEndings normalize` });
});
after(async () => {
  await dR?.stop();
  await dN?.stop();
  await wR?.close();
  await wN?.close();
});

/** Connect, EHLO, MAIL, RCPT, DATA → 354; the client is ready for the message. */
async function openData(
  d: Daemon,
  opts: { from?: string; rcpt?: string; local?: string; mailParams?: string } = {},
): Promise<SmtpClient> {
  const c = await SmtpClient.connect(d.port, '127.0.0.1', opts.local ?? '127.0.0.1');
  assert.equal((await c.greeting()).code, 220);
  await c.cmd('EHLO framing.example');
  assert.equal((await c.cmd(`MAIL FROM:<${opts.from ?? 'a@sender.example'}>${opts.mailParams ?? ''}`)).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<${opts.rcpt ?? 'victim@elsewhere.test'}>`)).code, 250);
  assert.match((await c.cmd('DATA')).last, /^354 /);
  return c;
}

/** Nothing injected at the downstream: no command and no message from the injected sender. */
function assertNoInjection(w: WireSink): void {
  assert.ok(
    !w.commands.some((c) => c.includes(INJECTED_FROM)),
    `injected command at the downstream: ${w.commands.filter((c) => c.includes(INJECTED_FROM))}`,
  );
  // (the injected text may be the content of a legitimate message: that is what "as text" means)
  assert.ok(!w.messages.some((m) => m.from === INJECTED_FROM), 'a message from the injected sender');
  for (const m of w.messages) assert.deepEqual(wireProblems(m.raw), [], `bytes sent downstream for ${m.to}`);
}

/** The message as the downstream got it, without the fields asmtpd prepends. */
function clientPart(m: WireMessage): string {
  const text = m.data.toString('latin1');
  const i = text.indexOf('X-Avenger:');
  const end = text.indexOf('\r\n', i);
  let j = end + 2;
  while (text[j] === '\t' || text[j] === ' ') j = text.indexOf('\r\n', j) + 2;
  return text.slice(j);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ── end-of-data look-alikes ───────────────────────────────────────────────────────────────────

for (const eod of LOOK_ALIKES.filter((v) => !IN_SMUGGLING_TEST.includes(v))) {
  test(`reject mode: "${show(eod)}" is no end of data and injects nothing`, async () => {
    const n = wR.messages.length;
    const c = await openData(dR);
    try {
      c.write('Subject: first\r\n\r\nfirst' + eod + INJECTION);
      assert.equal((await c.reply()).last, eod.includes('\x00') ? NUL : BARE);
      // the next reply is NOOP's own: the injected MAIL/RCPT/DATA were never commands
      assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
    } finally {
      c.close();
    }
    assert.equal(wR.messages.length, n);
    assertNoInjection(wR);
  });
}

test(`reject mode: every look-alike written one byte at a time around the dot`, async () => {
  const n = wR.messages.length;
  for (const eod of LOOK_ALIKES) {
    const c = await openData(dR);
    try {
      c.write('Subject: first\r\n\r\nfirst');
      for (const ch of eod) {
        await sleep(3);
        c.write(ch);
      }
      await sleep(3);
      c.write(INJECTION);
      assert.equal((await c.reply()).last, eod.includes('\x00') ? NUL : BARE, show(eod));
      assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
    } finally {
      c.close();
    }
  }
  assert.equal(wR.messages.length, n);
  assertNoInjection(wR);
});

test(`normalize mode: all ${LOOK_ALIKES.length} look-alikes become one message with the injection as text`, async () => {
  for (const eod of LOOK_ALIKES) {
    const n = wN.messages.length;
    const c = await openData(dN);
    try {
      c.write('Subject: first\r\n\r\nfirst' + eod + INJECTION);
      const r = await c.reply(30_000);
      if (eod.includes('\x00')) {
        assert.equal(r.last, NUL, show(eod));
        assert.equal(wN.messages.length, n);
      } else {
        assert.match(r.last, /^250 2\.0\.0 /, show(eod));
        assert.equal(wN.messages.length, n + 1, show(eod));
        const m = wN.messages[n]!;
        // the injected commands arrived as lines of the first message's body, dot-stuffed on the wire
        assert.ok(clientPart(m).includes(`\r\nMAIL FROM:<${INJECTED_FROM}>\r\n`), show(eod));
        assert.ok(m.raw.includes('\r\n..'), `the dot line is stuffed on the wire: ${show(eod)}`);
      }
      assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
    } finally {
      c.close();
    }
  }
  assert.ok(!wN.commands.some((c) => c.includes(INJECTED_FROM)));
  for (const m of wN.messages) assert.deepEqual(wireProblems(m.raw), []);
});

// ── segmentation and dot-stuffing ─────────────────────────────────────────────────────────────

test('the genuine terminator split over writes at every position still ends the message, once', async () => {
  const n = wR.messages.length;
  const term = '\r\n.\r\n';
  for (let cut = 0; cut <= term.length; cut++) {
    const c = await openData(dR);
    try {
      c.write('Subject: split\r\n\r\nbody' + term.slice(0, cut));
      await sleep(30);
      c.write(term.slice(cut) + 'NOOP\r\n');
      assert.match((await c.reply()).last, /^250 2\.0\.0 Ok: queued/, `cut at ${cut}`);
      assert.equal((await c.reply()).last, NOOP_OK);
    } finally {
      c.close();
    }
  }
  assert.equal(wR.messages.length, n + term.length + 1);
  assertNoInjection(wR);
});

test('a stuffed dot as the first line, sent alone, is content (smtp-server segmentation bug class)', async () => {
  const n = wR.messages.length;
  const c = await openData(dR);
  try {
    c.write('..');
    await sleep(50);
    c.write('\r\n' + INJECTION.replace(/\r\n\.\r\n$/, '\r\n') + '.\r\n');
    assert.match((await c.reply()).last, /^250 2\.0\.0 /);
    assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n + 1);
  const m = wR.messages[n]!;
  assert.ok(clientPart(m).startsWith(`.\r\nMAIL FROM:<${INJECTED_FROM}>\r\n`));
  assertNoInjection(wR);
});

test('relay side: dot lines are stuffed again toward the downstream (first, middle, last line)', async () => {
  const bodies = [
    '.\r\nMAIL FROM:<x@y>\r\n',
    'Subject: dots\r\n\r\n.\r\n..\r\n.MAIL FROM:<x@y>\r\n...\r\n',
    'Subject: last\r\n\r\ntext\r\n.\r\n',
    '.\r\n',
  ];
  for (const body of bodies) {
    const n = wR.messages.length;
    const c = await SmtpClient.connect(dR.port);
    try {
      await c.greeting();
      assert.match((await c.send('a@sender.example', ['victim@elsewhere.test'], body)).last, /^250 2\.0\.0 /);
    } finally {
      c.close();
    }
    assert.equal(wR.messages.length, n + 1, JSON.stringify(body));
    assert.equal(clientPart(wR.messages[n]!), body);
  }
  assertNoInjection(wR);
});

test('relay side: a dot line at the 64 KiB read boundaries of the spool is stuffed too', async () => {
  const tail = `.\r\nMAIL FROM:<${INJECTED_FROM}>\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nx\r\n`;
  for (const at of [65_536 - 2, 65_536 - 1, 65_536, 65_536 + 1, 131_072]) {
    // the spool holds the message unstuffed: put the "." line at byte `at`
    let body = 'Subject: boundary\r\n\r\n';
    const line = 'b'.repeat(78) + '\r\n';
    while (body.length + line.length + 10 < at) body += line;
    body += 'c'.repeat(at - body.length - 2) + '\r\n';
    assert.equal(body.length, at);
    body += tail;
    const n = wR.messages.length;
    const c = await SmtpClient.connect(dR.port);
    try {
      await c.greeting();
      assert.match(
        (await c.send('a@sender.example', ['victim@elsewhere.test'], body)).last,
        /^250 2\.0\.0 /,
        `dot at ${at}`,
      );
    } finally {
      c.close();
    }
    assert.equal(wR.messages.length, n + 1, `dot at ${at}`);
    assert.equal(clientPart(wR.messages[n]!), body, `dot at ${at}`);
  }
  assertNoInjection(wR);
});

// ── pipelining after the end of data ──────────────────────────────────────────────────────────

test('QUIT and RSET pipelined right after the final dot: one message, replies in order', async () => {
  for (const next of ['QUIT', 'RSET']) {
    const n = wR.messages.length;
    const c = await openData(dR);
    try {
      c.write(`Subject: ${next}\r\n\r\nbody\r\n.\r\n${next}\r\n`);
      assert.match((await c.reply()).last, /^250 2\.0\.0 Ok: queued/);
      assert.match((await c.reply()).last, next === 'QUIT' ? /^221 / : /^250 /);
      if (next === 'QUIT') assert.ok(await c.waitClosed());
    } finally {
      c.close();
    }
    assert.equal(wR.messages.length, n + 1, next);
  }
});

test('a message sent before 354 after a refused RCPT is read as commands: nothing is delivered', async () => {
  const n = wR.messages.length;
  // outside RelayNet: the RCPT is refused, DATA gets 503, the "message" is a series of bad commands
  const c = await SmtpClient.connect(dR.port, '127.0.0.1', '127.0.0.2');
  try {
    await c.greeting();
    await c.cmd('EHLO framing.example');
    c.write(
      `MAIL FROM:<a@sender.example>\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\nSubject: early\r\n\r\n${INJECTION}`,
    );
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) codes.push((await c.reply()).code);
    assert.deepEqual(codes.slice(0, 3), [250, 550, 503]);
    // the injected MAIL is refused as nested, RCPT to another domain is refused, DATA has no recipient
    assert.ok(
      codes.slice(3).every((x) => x >= 500),
      codes.join(' '),
    );
    assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n);
  assertNoInjection(wR);
});

// ── NUL and 8-bit bytes ───────────────────────────────────────────────────────────────────────

test('NUL in any command is 500 5.5.2 and starts nothing', async () => {
  const c = await SmtpClient.connect(dR.port);
  try {
    await c.greeting();
    const bad = '500 5.5.2 command contains NUL or bare CR characters';
    assert.equal((await c.cmd('EHLO a\x00b.example')).last, bad);
    assert.equal((await c.cmd('EHLO framing.example')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a\x00@sender.example>')).last, bad);
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>\x00 SIZE=10')).last, bad);
    assert.match((await c.cmd('RCPT TO:<victim@elsewhere.test>')).last, /^503 /, 'no transaction was started');
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<victim\x00@elsewhere.test>')).last, bad);
    assert.equal((await c.cmd('RCPT TO:<victim@elsewhere.test>')).code, 250);
    assert.equal((await c.cmd('DATA\x00')).last, bad);
    assert.equal((await c.cmd('\x00')).last, bad);
    assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
  } finally {
    c.close();
  }
});

test('NUL anywhere in the message (header, body, before the dot) is 554 in both modes', async () => {
  for (const d of [dR, dN]) {
    const w = d === dR ? wR : wN;
    for (const msg of [
      'Subject: a\x00b\r\n\r\nx\r\n',
      'Subject: x\r\n\r\nbody\x00\r\n',
      'Subject: x\r\n\r\nbody\r\n\x00\r\n',
      '\x00',
    ]) {
      const n = w.messages.length;
      const c = await openData(d);
      try {
        c.write(dotStuff(msg + (msg.endsWith('\r\n') ? '' : '\r\n')));
        c.write('.\r\n');
        assert.equal((await c.reply()).last, NUL, JSON.stringify(msg));
        assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
      } finally {
        c.close();
      }
      assert.equal(w.messages.length, n);
    }
  }
});

test('8-bit bytes in commands: a non-ASCII verb is unknown; 8-bit HELO is kept out of the framing', async () => {
  const n = wR.messages.length;
  const c = await SmtpClient.connect(dR.port);
  try {
    await c.greeting();
    assert.match((await c.cmd('M\xc1IL FROM:<a@sender.example>')).last, /^500 5\.5\.2 /);
    assert.match((await c.cmd('\xff\xfe\xfd')).last, /^500 5\.5\.2 /);
    assert.equal((await c.cmd('EHLO caf\xc3\xa9.example')).code, 250);
    const r = await c.send(
      'a@sender.example',
      ['victim@elsewhere.test'],
      'Subject: 8bit helo\r\n\r\nx\r\n',
      'caf\xc3\xa9.example',
    );
    assert.match(r.last, /^250 2\.0\.0 /);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n + 1);
  const head = wR.messages[n]!.data.toString('latin1');
  // issue 14: without SMTPUTF8 the HELO's non-ASCII bytes are '?' in Received (was: raw UTF-8)
  assert.match(head, /^Received: from caf\?\.example \(/m);
  assert.ok(!/^Received:[^\r]*[\x80-\xff]/m.test(head), 'an ASCII Received field');
  assertNoInjection(wR);
});

test('SMTPUTF8: a UTF-8 sender with SMTPUTF8 is relayed byte-exact with SMTPUTF8', async () => {
  const n = wR.messages.length;
  const c = await openData(dR, { from: 'caf\xc3\xa9@sender.example', mailParams: ' SMTPUTF8' });
  try {
    c.write('Subject: utf8\r\n\r\nx\r\n.\r\n');
    assert.match((await c.reply()).last, /^250 2\.0\.0 /);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n + 1);
  assert.match(wR.messages[n]!.mailLine, /^MAIL FROM:<caf\xc3\xa9@sender\.example>.* SMTPUTF8/);
});

// Found by this suite and fixed meanwhile (commit 7ae9b9b): a non-UTF-8 address used to be relayed
// with its bytes replaced by U+FFFD. Now an address must be UTF-8, and non-ASCII only after
// MAIL FROM … SMTPUTF8 (RFC 6531); anything else is refused, never passed on changed.
test('8-bit addresses: not UTF-8, or non-ASCII without SMTPUTF8, are refused; nothing is relayed changed', async () => {
  const n = wR.messages.length;
  const c = await SmtpClient.connect(dR.port);
  try {
    await c.greeting();
    await c.cmd('EHLO framing.example');
    for (const mail of [
      'MAIL FROM:<caf\xe9@sender.example>',
      'MAIL FROM:<caf\xe9@sender.example> SMTPUTF8',
      'MAIL FROM:<caf\xc3\xa9@sender.example>',
      'MAIL FROM:<a@s\xc3\xa9nder.example>',
    ]) {
      assert.match((await c.cmd(mail)).last, /^5\d\d /, mail);
    }
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250);
    assert.match((await c.cmd('RCPT TO:<v\xc3\xafctim@elsewhere.test>')).last, /^5\d\d /);
    assert.match((await c.cmd('RCPT TO:<v\xefctim@elsewhere.test>')).last, /^5\d\d /);
    assert.match((await c.cmd('DATA')).last, /^503 /);
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example> SMTPUTF8')).code, 250);
    assert.match((await c.cmd('RCPT TO:<v\xefctim@elsewhere.test>')).last, /^5\d\d /, 'not UTF-8 even with SMTPUTF8');
    assert.equal((await c.cmd('RCPT TO:<v\xc3\xafctim@elsewhere.test>')).code, 250);
    assert.match((await c.cmd('DATA')).last, /^354 /);
    c.write('Subject: utf8 rcpt\r\n\r\nx\r\n.\r\n');
    assert.match((await c.reply()).last, /^250 2\.0\.0 /);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n + 1);
  assert.deepEqual(wR.messages[n]!.to, ['v\xc3\xafctim@elsewhere.test'], 'the recipient byte-exact');
  assert.match(wR.messages[n]!.mailLine, / SMTPUTF8/);
});

// ── overlong lines ────────────────────────────────────────────────────────────────────────────

test('overlong command lines: 500 5.5.2 over 512 octets (nothing started), 421 and close past 64 KiB', async () => {
  const c = await SmtpClient.connect(dR.port);
  try {
    await c.greeting();
    await c.cmd('EHLO framing.example');
    assert.equal(
      (await c.cmd(`MAIL FROM:<${'a'.repeat(600)}@sender.example>`)).last,
      '500 5.5.2 line too long (more than 512 octets)',
    );
    assert.match((await c.cmd('RCPT TO:<victim@elsewhere.test>')).last, /^503 /);
    // 70,000 octets in 1 KiB pieces, without a line end: the daemon must not buffer it forever
    for (let i = 0; i < 70; i++) c.write('x'.repeat(1000));
    assert.match((await c.reply()).last, /^421 /);
    assert.ok(await c.waitClosed());
  } finally {
    c.close();
  }
});

// Decision (docs/decisions.md is silent): asmtpd passes message lines longer than RFC 5321's 998
// octets through unchanged, in the header and in the body. That is safe for framing because no
// byte is added or removed: the downstream sees the same line boundaries asmtpd saw, the rest of a
// long line can never become a line of its own (a header, a "." or a command). See
// docs/reliability.md for what this means with a downstream that splits long lines itself.
test('overlong message lines (header and body, up to 1 MB) reach the downstream intact, as one message', async () => {
  for (const len of [998, 999, 1000, 5000, 1_000_000]) {
    for (const where of ['header', 'body'] as const) {
      const long = where === 'header' ? `X-Long: ${'h'.repeat(len - 8)}` : 'b'.repeat(len);
      // the classic trick for a downstream that cuts at 998/1000: a "." + commands right after the cut
      const body =
        where === 'header'
          ? `${long}\r\nSubject: long\r\n\r\nx\r\n`
          : `Subject: long\r\n\r\n${long}.\r\nMAIL FROM:<${INJECTED_FROM}>\r\n`;
      const n = wR.messages.length;
      const c = await openData(dR);
      try {
        c.write(dotStuff(body));
        c.write('.\r\n');
        assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 /, `${where} ${len}`);
      } finally {
        c.close();
      }
      assert.equal(wR.messages.length, n + 1, `${where} ${len}`);
      const m = wR.messages[n]!;
      assert.equal(clientPart(m), body, `${where} ${len}`);
      assert.equal(longestLine(m.raw), where === 'header' ? len : len + 1);
    }
  }
  assertNoInjection(wR);
});

test(
  'with Postfix as the downstream, a "." after 998 octets never starts a line (Postfix folds with CRLF SPACE)',
  { timeout: 60_000 },
  async (t) => {
    if (!requirePostfix(t)) return;
    // asmtpd → a private Postfix (relay mode) → wire sink; the harness turns Postfix's line folding
    // off for transparency, this test wants Postfix's default (smtp_line_length_limit = 998)
    const w = await startWireSink();
    const pf = await startPostfix({
      mode: { relayTo: `127.0.0.1:${w.port}` },
      mainCf: { smtp_line_length_limit: '998' },
    });
    const d = await startDaemon({ conf: `RelayHost 127.0.0.1:${pf.port}\nRelayNet 127.0.0.0/8` });
    try {
      const body = `X-Long: ${'h'.repeat(990)}.\r\nSubject: long\r\n\r\n${'A'.repeat(998)}.\r\n${INJECTION.replace(/\r\n\.\r\n$/, '\r\n')}`;
      const c = await SmtpClient.connect(d.port);
      try {
        await c.greeting();
        assert.match((await c.send('a@sender.example', ['victim@elsewhere.test'], body)).last, /^250 2\.0\.0 /);
      } finally {
        c.close();
      }
      const deadline = Date.now() + 30_000;
      while (w.messages.length < 1 && Date.now() < deadline) await sleep(100);
      await sleep(500);
      assert.equal(w.messages.length, 1, 'exactly one message behind Postfix');
      const m = w.messages[0]!;
      assert.deepEqual(wireProblems(m.raw), []);
      assert.ok(longestLine(m.raw) <= 998, `Postfix sent a line of ${longestLine(m.raw)} octets`);
      const text = m.data.toString('latin1');
      assert.ok(
        text.includes(`${'A'.repeat(998)}\r\n .\r\n`),
        'the rest of the long line is a continuation starting with a space',
      );
      assertNoInjection(w);
    } finally {
      await d.stop();
      await pf.stop();
      await w.close();
    }
  },
);

// ── BDAT ──────────────────────────────────────────────────────────────────────────────────────

test('BDAT/CHUNKING is not offered: EHLO does not list it and BDAT gets 5xx with no side effect', async () => {
  const n = wR.messages.length;
  const c = await SmtpClient.connect(dR.port, '127.0.0.1', '127.0.0.2');
  try {
    await c.greeting();
    const ehlo = await c.cmd('EHLO framing.example');
    assert.ok(!ehlo.lines.some((l) => /CHUNKING|BINARYMIME/.test(l)), ehlo.lines.join(' | '));
    assert.match((await c.cmd('BDAT 10 LAST')).last, /^5\d\d /);
    // BINARYMIME needs BDAT (RFC 3030)
    assert.match((await c.cmd('MAIL FROM:<a@sender.example> BODY=BINARYMIME')).last, /^5\d\d /);
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250);
    assert.match((await c.cmd('RCPT TO:<victim@elsewhere.test>')).last, /^550 5\.7\.1 /);
    // a chunk whose payload looks like commands: they run as this client's own commands
    c.write(`BDAT 60 LAST\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\n`);
    assert.match((await c.reply()).last, /^5\d\d /);
    assert.match((await c.reply()).last, /^550 5\.7\.1 /);
    assert.match((await c.reply()).last, /^503 /);
    assert.equal((await c.cmd('NOOP')).last, NOOP_OK);
  } finally {
    c.close();
  }
  assert.equal(wR.messages.length, n);
});

test('whole-file check: every byte sent downstream was clean, nothing injected', () => {
  assertNoInjection(wR);
  assertNoInjection(wN);
  for (const w of [wR, wN]) {
    for (const cmd of w.commands) {
      // eslint-disable-next-line no-control-regex
      assert.match(
        cmd,
        /^(EHLO \S+|MAIL FROM:<[^\x00-\x1f]*>( \S+)*|RCPT TO:<[^\x00-\x1f]*>( \S+)*|DATA|RSET|NOOP|QUIT)$/,
      );
    }
  }
});

test('a UTF-8 address needs SMTPUTF8 on MAIL FROM: refused at MAIL and at RCPT without it', async () => {
  const c = await SmtpClient.connect(dR.port);
  try {
    await c.greeting();
    await c.cmd('EHLO framing.example');
    assert.match((await c.cmd('MAIL FROM:<caf\xc3\xa9@sender.example>')).last, /^5\d\d /);
    assert.match((await c.cmd('MAIL FROM:<plain@sender.example>')).last, /^250 /);
    assert.match((await c.cmd('RCPT TO:<caf\xc3\xa9@elsewhere.test>')).last, /^5\d\d /);
  } finally {
    c.close();
  }
});
