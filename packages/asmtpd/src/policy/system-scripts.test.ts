import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSystemScriptProbe } from './system-scripts.js';

test('absent only on ENOENT; the answer is kept for the TTL, then refreshed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-probe-'));
  try {
    const probe = createSystemScriptProbe(dir, 50);
    assert.equal(probe('relay'), true);
    writeFileSync(join(dir, 'relay'), 'accept\n');
    assert.equal(probe('relay'), true, 'cached');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(probe('relay'), false, 'noticed after the TTL');
    assert.equal(
      createSystemScriptProbe(join(dir, 'relay'), 50)('x'),
      false,
      'ENOTDIR is not "absent": the runner decides',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
