/**
 * Config issues: the one shape for every configuration error and warning.
 *
 * Public: ConfigIssue, formatIssue(issue).
 * An issue names the file as the user gave it and the line where the directive starts
 * (line 0 for whole-file problems such as a missing file). formatIssue prints the
 * compiler-style `FILE:LINE: message` that --check, SIGHUP reload and startup errors share.
 */
export interface ConfigIssue {
  file: string;
  /** 1-based line where the directive starts; 0 = the whole file */
  line: number;
  message: string;
}

/** "FILE:LINE: message", or "FILE: message" for a whole-file issue (line 0). */
export function formatIssue(issue: ConfigIssue): string {
  return issue.line > 0 ? `${issue.file}:${issue.line}: ${issue.message}` : `${issue.file}: ${issue.message}`;
}

/** Issues in file order (stable for issues on the same line). */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => a.issue.line - b.issue.line || a.index - b.index)
    .map((x) => x.issue);
}
