/**
 * The configuration module: asmtpd.conf → Config. Everything other modules need.
 *
 * loadConfig(file) / parseConfigText(text, file) → ConfigResult; checkConfig(file) for --check;
 * formatIssue(issue) → "FILE:LINE: message"; DIRECTIVES (the table) and findDirective(name).
 */
export type { Config, Cidr, RelayTarget } from './types.js';
export { loadConfig, parseConfigText, formatIssue, type ConfigResult, type ConfigIssue, type LoadOptions } from './load.js';
export { checkConfig, type CheckReport } from './check.js';
export { DIRECTIVES, findDirective } from './directives.js';
export type { Directive, Section } from './directive-kinds.js';
