/**
 * Loading asmtpd.conf: text → validated Config, or every error found (spec asmtpd.md §3).
 *
 * Public: loadConfig(file, options?), parseConfigText(text, file, options?) → ConfigResult;
 * evaluateConfigText / evaluateConfigFile (the same, plus the number of directives, for
 * --check); ConfigResult, LoadOptions; re-exports ConfigIssue and formatIssue.
 *
 * Steps: lex (lexer.ts) → for each directive line find its row (case-insensitive), check the
 * number of values and repetition, parse the values (values.ts, ip.ts) → cross-directive
 * rules → defaults for what was not given, in table order → checks of files the values name.
 * Every problem is collected (the loader never stops at the first); the result is `error` if
 * any was an error. Warnings (accepted but suspicious) come with an `ok` result.
 *
 * Errors: unreadable file (line 0), unterminated quote, unknown directive (with the closest
 * known name), a spec directive not supported yet, missing value, too many values, bad value,
 * a non-repeatable directive given twice, RelayHost together with Sendmail, PasswdFile,
 * DomainFile, AliasFile or Sendmail's program missing (or not executable). DBDir and HoldQueue
 * need not exist: the daemon creates them at start; nor need the AvengerUser account (the daemon
 * checks it at start, so --check works on another machine).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { findDirective, DIRECTIVES, NOT_YET_SUPPORTED } from './directives.js';
import type { DefaultContext, Directive } from './directive-kinds.js';
import { sortIssues, type ConfigIssue } from './issues.js';
import { lexConfig, type DirectiveLine } from './lexer.js';
import { closestName } from './suggest.js';
import { readTlsPairs } from './tls-files.js';
import type { Config } from './types.js';

export { formatIssue, type ConfigIssue } from './issues.js';

export type ConfigResult =
  | { kind: 'ok'; config: Config; warnings: ConfigIssue[] }
  | { kind: 'error'; errors: ConfigIssue[] };

export interface LoadOptions {
  /** the machine's host name, the default of Hostname (tests pin it); default os.hostname() */
  systemHostname?: string;
}

export interface ConfigEvaluation {
  result: ConfigResult;
  /** directive lines in the file (valid or not) */
  directiveCount: number;
}

/** Read and validate the configuration file. */
export function loadConfig(file: string, options: LoadOptions = {}): ConfigResult {
  return evaluateConfigFile(file, options).result;
}

/** Validate configuration text as if read from `file` (unit tests, stdin). */
export function parseConfigText(text: string, file: string, options: LoadOptions = {}): ConfigResult {
  return evaluateConfigText(text, file, options).result;
}

export function evaluateConfigFile(file: string, options: LoadOptions = {}): ConfigEvaluation {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : `cannot read: ${(err as Error).message}`;
    return { result: { kind: 'error', errors: [{ file, line: 0, message }] }, directiveCount: 0 };
  }
  return evaluateConfigText(text, file, options);
}

export function evaluateConfigText(text: string, file: string, options: LoadOptions = {}): ConfigEvaluation {
  const { directives: lines, errors: lexErrors } = lexConfig(text, file);
  const errors: ConfigIssue[] = [...lexErrors];
  const warnings: ConfigIssue[] = [];
  const draft: Partial<Config> = {};
  /** line where each given directive first appears */
  const givenAt = new Map<Directive, number>();

  for (const line of lines) {
    const directive = findDirective(line.name);
    if (directive === undefined) {
      errors.push({ file, line: line.line, message: describeUnknown(line.name) });
      continue;
    }
    const issueAt = (message: string): ConfigIssue => ({
      file,
      line: line.line,
      message: `${directive.name}: ${message}`,
    });
    const firstLine = givenAt.get(directive);
    if (firstLine !== undefined && !directive.repeatable) {
      errors.push(issueAt(`given twice (first at line ${firstLine}); it takes a single value`));
      continue;
    }
    if (firstLine === undefined) givenAt.set(directive, line.line);
    const countProblem = checkValueCount(directive, line);
    if (countProblem !== undefined) {
      errors.push(issueAt(countProblem));
      continue;
    }
    const outcome = directive.applyLine(draft, line.values);
    errors.push(...outcome.errors.map(issueAt));
    warnings.push(...outcome.warnings.map(issueAt));
  }

  errors.push(...checkDeliveryChoice(givenAt, file));
  errors.push(...checkAuthChoice(givenAt, file));
  warnings.push(...checkHoldOnFailure(givenAt, draft, file));
  warnings.push(...checkCramWithoutAuthFile(givenAt, draft, file));
  warnings.push(...checkPublicDoh(givenAt, draft, file));
  applyDefaults(draft, options, (message) => warnings.push({ file, line: 0, message }));
  for (const [directive, line] of givenAt) {
    errors.push(...directive.checkFiles(draft).map((m) => ({ file, line, message: `${directive.name}: ${m}` })));
  }
  errors.push(...checkTlsPairs(givenAt, draft, file));

  const directiveCount = lines.length;
  if (errors.length > 0) return { result: { kind: 'error', errors: sortIssues(errors) }, directiveCount };
  const config = { ...draft, file: resolve(file) } as Config;
  return { result: { kind: 'ok', config, warnings: sortIssues(warnings) }, directiveCount };
}

function describeUnknown(name: string): string {
  const planned = NOT_YET_SUPPORTED.find((n) => n.toLowerCase() === name.toLowerCase());
  if (planned !== undefined) return `directive ${planned} is not supported by this version of asmtpd`;
  const suggestion = closestName(
    name,
    DIRECTIVES.map((d) => d.name),
  );
  return (
    `unknown directive ${JSON.stringify(name)}` + (suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`)
  );
}

function checkValueCount(directive: Directive, line: DirectiveLine): string | undefined {
  if (line.values.length === 0) return `missing value (${directive.valueSyntax})`;
  if (directive.arity !== 'one' || line.values.length === 1) return undefined;
  const hint = line.values.slice(1).some((w) => w.startsWith('#')) ? '; a # comment must be on a line of its own' : '';
  return `too many values: expected one ${directive.form}, got ${line.values.length}${hint}`;
}

/** RelayHost and Sendmail are two ways to deliver: only one may be set. */
function checkDeliveryChoice(givenAt: ReadonlyMap<Directive, number>, file: string): ConfigIssue[] {
  const relayHostLine = lineOf(givenAt, 'RelayHost');
  const sendmailLine = lineOf(givenAt, 'Sendmail');
  if (relayHostLine === undefined || sendmailLine === undefined) return [];
  return [
    {
      file,
      line: Math.max(relayHostLine, sendmailLine),
      message: `RelayHost (line ${relayHostLine}) and Sendmail (line ${sendmailLine}) are both set: use one of them`,
    },
  ];
}

/** AuthFile and DovecotAuth are two backends of SMTP AUTH: only one may be set. */
function checkAuthChoice(givenAt: ReadonlyMap<Directive, number>, file: string): ConfigIssue[] {
  const a = lineOf(givenAt, 'AuthFile');
  const b = lineOf(givenAt, 'DovecotAuth');
  if (a === undefined || b === undefined) return [];
  return [
    {
      file,
      line: Math.max(a, b),
      message: `AuthFile (line ${a}) and DovecotAuth (line ${b}) are both set: use one of them`,
    },
  ];
}

function checkHoldOnFailure(
  givenAt: ReadonlyMap<Directive, number>,
  draft: Partial<Config>,
  file: string,
): ConfigIssue[] {
  const line = lineOf(givenAt, 'HoldOnFailure');
  if (line === undefined || draft.holdOnFailure !== true || draft.relayHost || draft.sendmail) return [];
  return [
    {
      file,
      line,
      message: 'HoldOnFailure: has no effect without RelayHost or Sendmail (accepted mail is always held then)',
    },
  ];
}

/** AuthCramMD5 checks {CRAM-MD5} and {PLAIN} AuthFile entries: without an AuthFile it does nothing. */
function checkCramWithoutAuthFile(
  givenAt: ReadonlyMap<Directive, number>,
  draft: Partial<Config>,
  file: string,
): ConfigIssue[] {
  const line = lineOf(givenAt, 'AuthCramMD5');
  if (line === undefined || draft.authCramMd5 === 'no' || lineOf(givenAt, 'AuthFile') !== undefined) return [];
  const why = lineOf(givenAt, 'DovecotAuth') === undefined ? 'no AuthFile is set' : 'DovecotAuth does not offer it';
  return [{ file, line, message: `AuthCramMD5: has no effect: ${why} (CRAM-MD5 needs AuthFile entries)` }];
}

/** TLSCert and TLSKey: as many of each, readable, each key its certificate's (config/tls-files.ts). */
function checkTlsPairs(givenAt: ReadonlyMap<Directive, number>, draft: Partial<Config>, file: string): ConfigIssue[] {
  const line = lineOf(givenAt, 'TLSCert') ?? lineOf(givenAt, 'TLSKey');
  if (line === undefined || !draft.tlsCerts || !draft.tlsKeys || !draft.tlsMinVersion) return [];
  const files = readTlsPairs({ tlsCerts: draft.tlsCerts, tlsKeys: draft.tlsKeys, tlsMinVersion: draft.tlsMinVersion });
  return files.kind === 'error' ? [{ file, line, message: `TLSCert/TLSKey: ${files.message}` }] : [];
}

/**
 * tangerine without DNSServer asks tangerine's own default servers: a public DoH service
 * (Cloudflare) the administrator may not have meant to send every client address to, and one
 * that DNSBLs such as Spamhaus refuse (127.255.255.254). Accepted, but said.
 */
function checkPublicDoh(givenAt: ReadonlyMap<Directive, number>, draft: Partial<Config>, file: string): ConfigIssue[] {
  const line = lineOf(givenAt, 'DNSResolver');
  if (line === undefined || draft.dnsResolver !== 'tangerine' || lineOf(givenAt, 'DNSServer') !== undefined) return [];
  return [
    {
      file,
      line,
      message:
        "DNSResolver: tangerine without DNSServer sends every lookup (client addresses, senders' domains, DNSBL queries) to tangerine's public DoH servers (Cloudflare's 1.1.1.1 and 1.0.0.1), and DNSBLs such as Spamhaus refuse queries from public resolvers: name your own DoH server with DNSServer, or use DNSResolver system (the default) with a local caching resolver such as unbound",
    },
  ];
}

function lineOf(givenAt: ReadonlyMap<Directive, number>, name: string): number | undefined {
  const directive = findDirective(name);
  return directive === undefined ? undefined : givenAt.get(directive);
}

/** Fill every field still empty, in table order (a default may read fields above it). */
function applyDefaults(draft: Partial<Config>, options: LoadOptions, warn: (message: string) => void): void {
  const ctx: DefaultContext = {
    systemHostname: options.systemHostname ?? hostname(),
    warn,
    resolved(field) {
      const value = draft[field];
      if (value === undefined)
        throw new Error(`config: a default reads ${field}, which is not resolved yet (table order)`);
      return value as Config[typeof field];
    },
  };
  for (const directive of DIRECTIVES) {
    // also when given with a bad value: the errors are reported, but later defaults still resolve
    if (draft[directive.field] === undefined) directive.applyDefault(draft, ctx);
  }
}
