/** WHEN: intervals (signed, or unsigned with a unit), epoch seconds, dates; bad input refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWhen } from './when.js';

const NOW = 1_700_000_000_000;

test('intervals from now, in every unit; epoch seconds; dates', () => {
  const cases: Array<[string, number]> = [
    ['+1d', NOW + 86_400_000],
    ['-2h', NOW - 7_200_000],
    ['+90', NOW + 90_000],
    ['-30s', NOW - 30_000],
    ['+5m', NOW + 300_000],
    ['+1M', NOW + 30 * 86_400_000],
    ['+1D', NOW + 86_400_000],
    ['+2W', NOW + 14 * 86_400_000],
    ['+1y', NOW + 365 * 86_400_000],
    ['36d', NOW + 36 * 86_400_000],
    ['2h30m', NOW + 9_000_000],
    ['+1d12h', NOW + 129_600_000],
    ['1767225600', 1_767_225_600_000],
    ['0', 0],
    ['2026-01-01', Date.UTC(2026, 0, 1)],
    ['2026-01-31T12:00:00Z', Date.UTC(2026, 0, 31, 12)],
    ['2026-01-31T12:00:00+01:00', Date.UTC(2026, 0, 31, 11)],
    ['Sat, 31 Jan 2026 12:00:00 +0000', Date.UTC(2026, 0, 31, 12)],
  ];
  for (const [text, ms] of cases) assert.deepEqual(parseWhen(text, NOW), { ms }, text);
});

test('nonsense, a unit alone, and absurd sizes are errors', () => {
  for (const bad of ['', 'soon', '+', '+d', '1x', '+1x', 'h', '+99999999999999d', '$(reboot)', 'March']) {
    const r = parseWhen(bad, NOW);
    assert.ok('error' in r, `${JSON.stringify(bad)} → ${JSON.stringify(r)}`);
  }
});
