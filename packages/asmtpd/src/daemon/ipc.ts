/**
 * ipc.ts — requests and answers over the IPC channel between the primary and a worker
 * (node:cluster's channel: `process` in a worker, the cluster Worker in the primary).
 *
 *   createIpc(channel, handlers) -> Ipc
 *     .call(op, arg) -> Promise<value>   one request; rejects when the other side answers with an
 *                                        error or the channel closes before the answer
 *     .tell(op, arg)                     a one-way message (no answer)
 *     .close()                           fail the pending calls (the channel is gone)
 *
 * A message is `{asmtpd: 1, op, arg, id?}` (id: an answer is wanted) or `{asmtpd: 1, re: id,
 * value | error}`. Messages without `asmtpd` (node:cluster's own) are left alone. Each side
 * answers only the ops of its `handlers`; an unknown op is answered with an error. The channel
 * serializes with JSON: values are plain data.
 */

export interface IpcChannel {
  send(message: unknown): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
}

export type IpcHandlers = Record<string, (arg: unknown) => unknown>;

export interface Ipc {
  call<T = unknown>(op: string, arg?: unknown): Promise<T>;
  tell(op: string, arg?: unknown): void;
  close(): void;
}

interface Request {
  asmtpd: 1;
  op: string;
  arg?: unknown;
  id?: number;
}
interface Answer {
  asmtpd: 1;
  re: number;
  value?: unknown;
  error?: string;
}

function isOurs(m: unknown): m is Request | Answer {
  return typeof m === 'object' && m !== null && (m as { asmtpd?: unknown }).asmtpd === 1;
}

export function createIpc(channel: IpcChannel, handlers: IpcHandlers): Ipc {
  let nextId = 1;
  let closed = false;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const send = (m: Request | Answer): void => {
    try {
      channel.send(m);
    } catch {
      /* the channel closed meanwhile: 'disconnect' fails what waits */
    }
  };
  const fail = (why: string): void => {
    for (const p of pending.values()) p.reject(new Error(why));
    pending.clear();
  };

  channel.on('message', (m: unknown) => {
    if (!isOurs(m)) return;
    if ('re' in m) {
      const p = pending.get(m.re);
      if (!p) return;
      pending.delete(m.re);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.value);
      return;
    }
    const handler = handlers[m.op];
    const id = m.id;
    if (!handler) {
      if (id !== undefined) send({ asmtpd: 1, re: id, error: `unknown request ${m.op}` });
      return;
    }
    let result: unknown;
    try {
      result = handler(m.arg);
    } catch (err) {
      if (id !== undefined) send({ asmtpd: 1, re: id, error: (err as Error).message });
      return;
    }
    if (id === undefined) return;
    Promise.resolve(result).then(
      (value) => send({ asmtpd: 1, re: id, value: value === undefined ? null : value }),
      (err: unknown) => send({ asmtpd: 1, re: id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  channel.on('disconnect', () => {
    closed = true;
    fail('the IPC channel closed');
  });

  return {
    call<T>(op: string, arg?: unknown): Promise<T> {
      if (closed) return Promise.reject(new Error('the IPC channel closed'));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        send({ asmtpd: 1, op, arg, id });
      });
    },
    tell(op, arg) {
      if (!closed) send({ asmtpd: 1, op, arg });
    },
    close() {
      closed = true;
      fail('the IPC channel closed');
    },
  };
}
