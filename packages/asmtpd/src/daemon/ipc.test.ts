import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createIpc, type IpcChannel } from './ipc.js';

/** two channels joined back to back, with JSON in between as the cluster's channel does */
function pair(): [IpcChannel & EventEmitter, IpcChannel & EventEmitter] {
  const a = new EventEmitter() as IpcChannel & EventEmitter;
  const b = new EventEmitter() as IpcChannel & EventEmitter;
  a.send = (m) => (setImmediate(() => b.emit('message', JSON.parse(JSON.stringify(m)))), true);
  b.send = (m) => (setImmediate(() => a.emit('message', JSON.parse(JSON.stringify(m)))), true);
  return [a, b];
}

test('a call gets its answer, sync or async; errors and unknown ops reject', async () => {
  const [a, b] = pair();
  const told: unknown[] = [];
  createIpc(b, {
    double: (x) => (x as number) * 2,
    later: async (x) => `later ${x as string}`,
    boom: () => {
      throw new Error('boom');
    },
    note: (x) => void told.push(x),
  });
  const ipc = createIpc(a, {});
  assert.equal(await ipc.call('double', 21), 42);
  assert.equal(await ipc.call('later', 'x'), 'later x');
  await assert.rejects(ipc.call('boom'), /boom/);
  await assert.rejects(ipc.call('nope'), /unknown request nope/);
  ipc.tell('note', { n: 1 });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(told, [{ n: 1 }]);
  // an undefined result is an answer too
  assert.equal(await ipc.call('note', 2), null);
});

test('messages that are not ours are left alone; a closed channel fails what waits', async () => {
  const [a, b] = pair();
  const ipc = createIpc(a, {});
  createIpc(b, { slow: () => new Promise(() => undefined) });
  a.emit('message', { cmd: 'NODE_CLUSTER', act: 'online' });
  const pending = ipc.call('slow');
  a.emit('disconnect');
  await assert.rejects(pending, /closed/);
  await assert.rejects(ipc.call('slow'), /closed/);
});
