/**
 * `asmtpd --check`: validate a configuration file and say so in lines a human (or a script)
 * can read. The CLI (src/cli/) prints the lines and exits 0 when ok, 2 otherwise.
 *
 * Public: checkConfig(file, options?) → { ok, lines, result }; checkConfigText(text, label) the same
 * for text that is not in a file (the embedded default).
 * Lines: every error and warning as `FILE:LINE: message` (warnings as `FILE:LINE: warning:
 * message`), in file order; when there is no error, a last line `FILE: OK (N directives)`.
 */
import {
  evaluateConfigFile,
  evaluateConfigText,
  formatIssue,
  type ConfigEvaluation,
  type ConfigResult,
  type LoadOptions,
} from './load.js';

export interface CheckReport {
  ok: boolean;
  lines: string[];
  /** the loaded configuration, for a caller that goes on to check what it names */
  result: ConfigResult;
}

export function checkConfig(file: string, options: LoadOptions = {}): CheckReport {
  return report(file, evaluateConfigFile(file, options));
}

/** The same for configuration text that is not in a file (the embedded default), named `label`. */
export function checkConfigText(text: string, label: string, options: LoadOptions = {}): CheckReport {
  return report(label, evaluateConfigText(text, label, options));
}

function report(file: string, evaluation: ConfigEvaluation): CheckReport {
  const { result, directiveCount } = evaluation;
  if (result.kind === 'error') return { ok: false, lines: result.errors.map(formatIssue), result };
  const lines = result.warnings.map((w) => formatIssue({ ...w, message: `warning: ${w.message}` }));
  const plural = directiveCount === 1 ? 'directive' : 'directives';
  lines.push(`${file}: OK (${directiveCount} ${plural})`);
  return { ok: true, lines, result };
}
