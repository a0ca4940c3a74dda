import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rblMailError } from './rbl-verdict.js';
import type { RblListing } from './dnsbl.js';

const listing = (zone: string, score: number, reason: string): RblListing => ({
  zone,
  score,
  reason,
  codes: ['127.0.0.2'],
});

test('rblMailError: zones and reasons in order once the total reaches the threshold', () => {
  const listed = [listing('a.example', 1, 'spam source'), listing('b.example', 2, 'listed by b.example')];
  assert.equal(
    rblMailError({ score: 3, listed }, 3),
    '550 5.7.1 listed by a.example, b.example: spam source; listed by b.example',
  );
  assert.equal(
    rblMailError({ score: 3, listed }, 1),
    '550 5.7.1 listed by a.example, b.example: spam source; listed by b.example',
  );
  assert.equal(rblMailError({ score: 3, listed }, 3.5), null);
});

test('rblMailError: nothing listed is never a rejection, even with threshold 0', () => {
  assert.equal(rblMailError({ score: 0, listed: [] }, 0), null);
  assert.equal(
    rblMailError({ score: 0, listed: [listing('z.example', 0, 'r')] }, 0),
    '550 5.7.1 listed by z.example: r',
  );
});

test('rblMailError: fractional scores add up, control characters in reasons become spaces', () => {
  const listed = [listing('a.example', 0.1, 'x'), listing('b.example', 0.2, 'line\r\nbreak')];
  assert.equal(
    rblMailError({ score: 0.1 + 0.2, listed }, 0.3),
    '550 5.7.1 listed by a.example, b.example: x; line break',
  );
});
