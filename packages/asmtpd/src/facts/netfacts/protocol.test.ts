import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSynInfo, LineSplitter, validateRequest } from './protocol.js';
import { parseSynPacket } from '../synfp/syn-packet.js';

test('route and capture requests are checked field by field', () => {
  assert.deepEqual(validateRequest({ id: 3, op: 'route', ip: '192.0.2.1', maxHops: 30, timeoutMs: 5000 }), {
    ok: true,
    request: { id: 3, op: 'route', ip: '192.0.2.1', maxHops: 30, timeoutMs: 5000 },
  });
  assert.deepEqual(validateRequest({ op: 'capture', on: false }), { ok: true, request: { op: 'capture', on: false } });
  const bad: [unknown, number | null, RegExp][] = [
    [null, null, /not an object/],
    [[1], null, /not an object/],
    [{ op: 'capture', on: 'yes' }, null, /capture needs/],
    [{ id: 1, op: 'exec', argv: ['sh'] }, 1, /unknown op/],
    [{ op: 'route', ip: '192.0.2.1', maxHops: 30, timeoutMs: 5000 }, null, /numeric id/],
    [{ id: 2, op: 'route', ip: 'example.com', maxHops: 30, timeoutMs: 5000 }, 2, /not an IP/],
    [{ id: 2, op: 'route', ip: '192.0.2.1', maxHops: 65, timeoutMs: 5000 }, 2, /maxHops/],
    [{ id: 2, op: 'route', ip: '192.0.2.1', maxHops: 3, timeoutMs: 10 }, 2, /timeoutMs/],
  ];
  for (const [value, id, reason] of bad) {
    const r = validateRequest(value);
    assert.equal(r.ok, false, JSON.stringify(value));
    if (!r.ok) {
      assert.equal(r.id, id);
      assert.match(r.reason, reason);
    }
  }
});

test('LineSplitter keeps partial lines and refuses endless ones', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('{"a":1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(s.push(':2}\n'), ['{"b":2}']);
  assert.throws(() => s.push('x'.repeat(70_000)), /line too long/);
});

test('a SynInfo survives the JSON trip; anything else is refused', () => {
  const hex =
    '4500003c8c5b40004006b05e7f0000017f000001c91ebd771ba886b100000000a002ffd7fe3000000204ffd70402080a67ea0332000000000103030a';
  const syn = parseSynPacket(Buffer.from(hex, 'hex'))!;
  assert.ok(isSynInfo(JSON.parse(JSON.stringify(syn))));
  assert.equal(isSynInfo({ ...syn, ttl: 300 }), false);
  assert.equal(isSynInfo({ ...syn, options: 'M1460' }), false);
  assert.equal(isSynInfo('syn'), false);
});
