import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GlobalLimits } from './global-limits.js';

test('MaxClientsPerIP and MaxClients are counted over every worker', () => {
  const g = new GlobalLimits();
  assert.equal(g.admit(1, '192.0.2.1', 3, 2), 'ok');
  assert.equal(g.admit(2, '192.0.2.1', 3, 2), 'ok');
  assert.equal(g.admit(1, '192.0.2.1', 3, 2), 'max-per-ip');
  assert.equal(g.admit(2, '192.0.2.1', 3, 2), 'max-per-ip');
  assert.equal(g.admit(2, '192.0.2.2', 3, 2), 'ok');
  assert.equal(g.admit(1, '192.0.2.3', 3, 2), 'max-clients');
  assert.equal(g.size, 3);
  g.release(2, '192.0.2.1');
  assert.equal(g.admit(1, '192.0.2.1', 3, 2), 'ok');
});

test('a release names the worker that counted it; a worker that died gives its places back', () => {
  const g = new GlobalLimits();
  g.admit(1, '192.0.2.1', 10, 5);
  g.admit(1, '192.0.2.1', 10, 5);
  g.admit(2, '192.0.2.1', 10, 5);
  // worker 3 never counted this address: its release changes nothing
  g.release(3, '192.0.2.1');
  assert.equal(g.size, 3);
  g.forget(1);
  assert.equal(g.size, 1);
  // the dead worker's late release (none can come, but) does not count twice
  g.release(1, '192.0.2.1');
  assert.equal(g.size, 1);
  assert.equal(g.admit(2, '192.0.2.1', 10, 2), 'ok');
  assert.equal(g.admit(2, '192.0.2.1', 10, 2), 'max-per-ip');
});

test('AUTH failures are one count per address for the whole daemon', () => {
  const g = new GlobalLimits();
  assert.equal(g.authFailures.fail('192.0.2.9'), 1);
  assert.equal(g.authFailures.fail('192.0.2.9'), 2);
  assert.equal(g.authFailures.count('192.0.2.9'), 2);
});
