/**
 * fold.ts — fold a header field at whitespace so that no line exceeds 78 columns (RFC 5322 §2.2.3).
 * Items are joined with `sep`; a fold happens between items, and inside an item (at its spaces)
 * only when the item alone does not fit on a line.
 */
export function foldHeader(name: string, items: readonly string[], sep = '; ', width = 78): string {
  const words: string[] = [];
  items.forEach((item, i) => {
    const text = item + (i < items.length - 1 ? sep.trimEnd() : '');
    if (text.length <= width - 1) words.push(text);
    else words.push(...text.split(' ').filter((p) => p !== ''));
  });
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > width && line.trim() !== `${name}:`) {
      lines.push(line);
      line = `\t${w}`;
    } else {
      line += ` ${w}`;
    }
  }
  lines.push(line);
  return lines.join('\r\n') + '\r\n';
}

/** Make a client-supplied value safe inside a structured header: no CR/LF/controls, no `;`. */
export function headerSafe(value: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x1f\x7f;]/g, '?');
  return clean.length > max ? clean.slice(0, max) + '...' : clean;
}
