/*
 * @asmtpd/spf — RFC 7208 SPF: check_host(), policy evaluation, Received-SPF.
 *
 * Public API (see README.md): checkHost, checkMailFrom, checkHelo, evaluatePolicy,
 *   parseLocalPolicy, receivedSpf, DEFAULT_EXPLANATION; parsing and macro helpers for tools
 *   (parseRecord, parseTerms, isSpfRecord, parseMacroString, expandMacroString, SpfSyntaxError);
 *   the resolver contract (SpfResolver, MxRecord) and LookupCache; the limits constants.
 * Security: see README.md — the library trusts DNS answers only as data, sends nothing but
 *   the queries its resolver makes, and bounds them by RFC 7208 §4.6.4.
 */
export {
  checkHost,
  checkMailFrom,
  checkHelo,
  evaluatePolicy,
  parseLocalPolicy,
  DEFAULT_EXPLANATION,
  type CheckOptions,
  type PolicyContext,
  type SpfResult,
  type SpfResultWord,
} from './check-host.js';
export { receivedSpf, type ReceivedSpfInfo, type ReceivedSpfOptions } from './received-spf.js';
export { parseRecord, parseTerms, isSpfRecord, type Mechanism, type Qualifier, type SpfRecord } from './parse.js';
export {
  parseMacroString,
  parseDomainSpec,
  expandMacroString,
  expandDomain,
  urlEscape,
  SpfSyntaxError,
  type MacroString,
  type MacroValues,
  type MacroToken,
} from './macro.js';
export { LookupCache, type SpfResolver, type MxRecord, type Answer } from './resolver.js';
export { MAX_DNS_TERMS, MAX_VOID_LOOKUPS, MAX_MX_NAMES, MAX_PTR_NAMES } from './limits.js';
export { parseClientIp, type ClientIp } from './ip.js';
export { createDohRequest, type DohRequest } from './doh-request.js';
