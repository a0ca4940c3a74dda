/**
 * white-list-file.ts — WhiteListFile (issue 19): networks never counted nor blocked, any number
 * per line, `#` to the end of a line a comment. Read when the Runtime is built (start, SIGHUP).
 *
 *   readWhiteListFile(path, onIssues) -> Cidr[]   a bad word is an issue (FILE:LINE) and skipped;
 *                                                 an unreadable file is one issue and no network
 */
import { readFileSync } from 'node:fs';
import { parseCidr } from '../config/ip.js';
import type { ConfigIssue } from '../config/issues.js';
import type { Cidr } from '../config/types.js';

export function readWhiteListFile(path: string, onIssues: (issues: readonly ConfigIssue[]) => void): Cidr[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    onIssues([{ file: path, line: 0, message: `WhiteListFile cannot be read: ${(err as Error).message}` }]);
    return [];
  }
  const nets: Cidr[] = [];
  const issues: ConfigIssue[] = [];
  text.split('\n').forEach((raw, i) => {
    for (const word of raw
      .replace(/#.*/, '')
      .split(/[\s,]+/)
      .filter(Boolean)) {
      const parsed = parseCidr(word);
      if (parsed.kind === 'ok') nets.push(parsed.value);
      else issues.push({ file: path, line: i + 1, message: `${word}: ${parsed.message}` });
    }
  });
  if (issues.length) onIssues(issues);
  return nets;
}
