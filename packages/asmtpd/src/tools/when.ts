/**
 * when.ts — the WHEN of the utilities' time options (`dbutil -t WHEN`, `--expire=WHEN`), as Mail
 * Avenger writes it: a date, or an interval from now.
 *
 *   parseWhen(text, nowMs) -> {ms} | {error}     the moment, in milliseconds since the epoch
 *
 *   +N[UNIT]…, -N[UNIT]…   an interval after (+) or before (-) now: `+1d`, `-2h`, `+1d12h`, `+90`
 *   N UNIT…                 the same without a sign means after now: `36d`, `2h30m`
 *   N (digits only)         an absolute time in seconds since the epoch: `1767225600`
 *   anything else           a date as Date.parse reads it: ISO 8601 (`2026-01-31`, UTC midnight;
 *                           `2026-01-31T12:00:00+01:00`) or RFC 2822 (`Sat, 31 Jan 2026 12:00:00 +0000`)
 *   UNIT: s seconds (the default), m minutes, h hours, d or D days, w or W weeks, M months (30 days),
 *   y or Y years (365 days). Mail Avenger's lower-case m is minutes, capital M months.
 */

const UNIT_SECONDS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  D: 86_400,
  w: 604_800,
  W: 604_800,
  M: 30 * 86_400,
  y: 365 * 86_400,
  Y: 365 * 86_400,
};

/** 10,000 years either way: beyond it a WHEN is surely a mistake (and Date cannot show it). */
const MAX_ABS_MS = 10_000 * 365 * 86_400_000;

const INTERVAL = /^([+-]?)((?:\d{1,12}[smhdDwWMyY]?)+)$/;
const PART = /(\d{1,12})([smhdDwWMyY]?)/g;

export function parseWhen(text: string, nowMs: number): { ms: number } | { error: string } {
  const t = text.trim();
  const bad = { error: `bad time "${text.slice(0, 64)}": want a date or an interval such as +1d, -2h, 36d` };
  if (/^\d+$/.test(t)) {
    const ms = Number(t) * 1000;
    return ms <= MAX_ABS_MS ? { ms } : bad;
  }
  const m = INTERVAL.exec(t);
  // "12" alone was handled above; an unsigned interval needs a unit to be one
  if (m && (m[1] !== '' || /[a-zA-Z]/.test(m[2]!))) {
    let seconds = 0;
    for (const [, n, unit] of m[2]!.matchAll(PART)) seconds += Number(n) * UNIT_SECONDS[unit || 's']!;
    const ms = nowMs + (m[1] === '-' ? -1 : 1) * seconds * 1000;
    return Math.abs(ms) <= MAX_ABS_MS ? { ms } : bad;
  }
  if (!/\d/.test(t)) return bad;
  const ms = Date.parse(t);
  return Number.isFinite(ms) && Math.abs(ms) <= MAX_ABS_MS ? { ms } : bad;
}
