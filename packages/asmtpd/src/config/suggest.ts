/**
 * "Did you mean…?" for unknown directive names.
 *
 * Public: closestName(name, candidates) → the best candidate or undefined.
 * A candidate is suggested when it is a near miss: an edit distance (case-insensitive) of at
 * most max(2, a third of the name's length), or one name containing the other (4+ letters).
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const other = candidate.toLowerCase();
    const contains = lower.length >= 4 && (other.includes(lower) || lower.includes(other));
    const distance = contains ? 0.5 : editDistance(lower, other);
    if (distance <= Math.max(2, Math.floor(lower.length / 3)) && (best === undefined || distance < best.distance)) {
      best = { candidate, distance };
    }
  }
  return best?.candidate;
}

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
