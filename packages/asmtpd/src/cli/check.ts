/** `asmtpd --check [-f FILE]`: print every problem as FILE:LINE: message; exit 0 only if clean. */
import { checkConfig } from '../config/check.js';

export function runCheck(file: string, out: NodeJS.WritableStream): number {
  const report = checkConfig(file);
  for (const line of report.lines) out.write(line + '\n');
  return report.ok ? 0 : 2;
}
