/** docs/logging.md lists exactly the events of the catalogue (docs-sync). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LOG_EVENTS } from './events.js';

test('docs/logging.md documents every event of the catalogue, and no other', () => {
  const doc = readFileSync(new URL('../../../../docs/logging.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/^\| `([a-z_.]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), Object.keys(LOG_EVENTS).sort());
});
