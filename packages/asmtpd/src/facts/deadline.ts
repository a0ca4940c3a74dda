/**
 * deadline.ts — bound a promise by a time limit: after `ms` it settles with `late()` instead.
 * The timer is cleared when the promise settles first, so nothing is left pending.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(late()), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
