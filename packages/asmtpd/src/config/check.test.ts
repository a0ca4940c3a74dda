import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig } from './check.js';

const HOST = { systemHostname: 'mx.example.org' };

test('checkConfig: clean file → one summary line; errors → FILE:LINE lines; warnings kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-check-'));
  try {
    const clean = join(dir, 'clean.conf');
    writeFileSync(clean, '# comment\nSMTPPort 2525\nLogLevel warn\n');
    assert.deepEqual(checkConfig(clean, HOST).lines, [`${clean}: OK (2 directives)`]);
    assert.equal(checkConfig(clean, HOST).ok, true);

    const one = join(dir, 'one.conf');
    writeFileSync(one, 'RelayNet 10.0.0.1/8\n');
    assert.deepEqual(checkConfig(one, HOST), {
      ok: true,
      lines: [
        `${one}:1: warning: RelayNet: 10.0.0.1/8 has host bits set; using the network 10.0.0.0/8`,
        `${one}: OK (1 directive)`,
      ],
      result: checkConfig(one, HOST).result,
    });

    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, 'SMTPPort 0\n\nNoSuch 1\n');
    const report = checkConfig(bad, HOST);
    assert.equal(report.ok, false);
    assert.deepEqual(report.lines, [
      `${bad}:1: SMTPPort: bad value "0": expected a port number from 1 to 65535`,
      `${bad}:3: unknown directive "NoSuch"`,
    ]);

    const missing = join(dir, 'missing.conf');
    assert.deepEqual(checkConfig(missing, HOST).lines, [`${missing}: no such file`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
