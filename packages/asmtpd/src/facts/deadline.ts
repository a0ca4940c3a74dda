/**
 * deadline.ts — time limits for facts.
 *
 *   withDeadline(p, ms, late) -> p, or late() once ms have passed; the timer is cleared when p
 *     settles first, so nothing is left pending
 *   deadline(ms) -> {passed, cancel}   one timer several lookups can race against (`passed`
 *     resolves after ms); cancel() clears it
 */
export function withDeadline<T>(p: Promise<T>, ms: number, late: () => T): Promise<T> {
  const d = deadline(ms);
  return Promise.race([p, d.passed.then(late)]).finally(d.cancel);
}

export interface Deadline {
  passed: Promise<void>;
  cancel(): void;
}

export function deadline(ms: number): Deadline {
  let timer: NodeJS.Timeout | undefined;
  const passed = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { passed, cancel: () => clearTimeout(timer) };
}
