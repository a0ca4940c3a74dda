/**
 * system-scripts.ts — "is there an EtcDir/unknown, relay or default at all?", answered by the
 * daemon itself so that the common case (no such file) costs no round trip to the runner.
 *
 *   createSystemScriptProbe(etcDir, ttlMs) -> (name) => boolean   true only when surely absent
 *
 * EtcDir is normally world-readable (/etc/avenger, 0755): a stat tells whether the file exists.
 * The answer is kept for ttlMs (a new script is noticed within a second). Anything but ENOENT
 * (the file exists, EtcDir unreadable, …) says "not known absent": the runner then looks, and
 * does the ownership and mode checks as usual — this probe never decides that a script is safe.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

export function createSystemScriptProbe(etcDir: string, ttlMs = 1000): (name: string) => boolean {
  const cache = new Map<string, { at: number; absent: boolean }>();
  return (name) => {
    const now = Date.now();
    const hit = cache.get(name);
    if (hit && now - hit.at < ttlMs) return hit.absent;
    let absent = false;
    try {
      statSync(join(etcDir, name));
    } catch (err) {
      absent = (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
    cache.set(name, { at: now, absent });
    return absent;
  };
}
