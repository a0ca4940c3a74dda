/**
 * source.ts — which configuration a command (or the script runner) uses: the file, or
 * the embedded default when there is none and no -f was given (embedded.ts).
 *
 *   loadForCommand({file, fileGiven}) -> {result: ConfigResult, source}
 *   DEFAULT_CONFIG_FILE   /etc/avenger/asmtpd.conf (asmtpd's -f, avenger.local's --config)
 */
import { existsSync } from 'node:fs';
import { loadConfig, parseConfigText, type ConfigResult } from './load.js';
import { EMBEDDED_LABEL, embeddedConfigText } from './embedded.js';

export const DEFAULT_CONFIG_FILE = '/etc/avenger/asmtpd.conf';

export function loadForCommand(args: { file: string; fileGiven: boolean }): { result: ConfigResult; source: string } {
  if (!args.fileGiven && !existsSync(args.file)) {
    return { result: parseConfigText(embeddedConfigText(), EMBEDDED_LABEL), source: EMBEDDED_LABEL };
  }
  return { result: loadConfig(args.file), source: args.file };
}
