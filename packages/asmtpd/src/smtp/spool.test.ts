import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { LineEndingChecker, spoolMessage, type SpoolResult } from './spool.js';

/** Feed the data in every possible two-chunk split so chunk boundaries are covered. */
function check(data: string, normalize = false): string | null {
  const buf = Buffer.from(data, 'latin1');
  let result: string | null = null;
  for (let cut = 0; cut <= buf.length; cut++) {
    const c = new LineEndingChecker();
    const a = c.check(buf.subarray(0, cut), normalize);
    const b = a === null ? null : c.check(buf.subarray(cut), normalize);
    const ok = a !== null && b !== null && (normalize || c.finish());
    const out = ok ? Buffer.concat([a!, b!]).toString('latin1') : null;
    if (cut > 0) assert.equal(out, result, `split at ${cut} of ${JSON.stringify(data)}`);
    result = out;
  }
  return result;
}

test('CRLF-only data passes unchanged', () => {
  assert.equal(check('a\r\nb\r\n\r\n.x\r\n'), 'a\r\nb\r\n\r\n.x\r\n');
  assert.equal(check(''), '');
});

for (const bad of ['a\nb\r\n', 'a\rb\r\n', '\n', '\r', 'a\r\n\n', 'a\r\r\n', 'x\n.\r\n', 'x\r.\r', 'x\r\n.\r']) {
  test(`rejects ${JSON.stringify(bad)}`, () => {
    assert.equal(check(bad), null);
  });
}

test('normalize mode turns bare CR and bare LF into CRLF', () => {
  assert.equal(check('a\nb\rc\r\n', true), 'a\r\nb\r\nc\r\n');
  assert.equal(check('\n\n', true), '\r\n\r\n');
});

test('a spool write that fails while the stream waits for drain still ends with write-error (not a hang)', async () => {
  // the directory does not exist: the open fails after the first writes were buffered past the
  // high-water mark, so the stream was paused for 'drain' (the same path as ENOSPC on a full DBDir)
  const stream = new PassThrough();
  const done = spoolMessage(stream, {
    path: '/nonexistent-asmtpd-dir/spool/x',
    maxBytes: 10_000_000,
    bareLineEndings: 'reject',
  });
  const line = Buffer.from('x'.repeat(1022) + '\r\n');
  for (let i = 0; i < 1024; i++) stream.write(line);
  stream.end();
  const timeout = new Promise<'hang'>((r) => setTimeout(() => r('hang'), 3000).unref());
  const r = await Promise.race([done, timeout]);
  assert.notEqual(r, 'hang', 'spoolMessage settled');
  assert.equal((r as SpoolResult).kind, 'write-error');
});
