/*
 * prelude — the constant shell text run before every rcpt script, and the parser of what
 * the script's decision functions write.
 *
 * SUMMARY
 *   The runner starts   /bin/sh -c SHELL_PRELUDE SCRIPT_PATH   with the checked script open on
 *   fd 4 and the decision channel on fd 3. The prelude defines the decision functions and then
 *   sources /dev/fd/4 (so $0 is the script's path, and the file that runs is the very inode the
 *   runner checked). Each decision function writes one record to fd 3 and exits 0:
 *       COUNT \0 VERB \0 ARG \0 ...          (COUNT = 1 + number of args, in decimal)
 *   e.g.  "2\0reject\0550 5.7.1 go away\0".
 *
 *   accept [text]            250 now
 *   reject [text]            550 5.7.1 text (or the text's own 5xx code)
 *   defer [text]             451 4.7.1 text (or the text's own 4xx code)
 *   redirect ADDRESS         re-run the policy as ADDRESS
 *   bodytest COMMAND [ARG…]  run COMMAND after DATA with the message on stdin
 *   errcheck                 if MAIL_ERROR is non-empty: reject with it if it starts with 5,
 *                            else defer with it (a doubt never becomes a permanent reject)
 *   A function whose record cannot be written exits 75, so a lost reject never looks like
 *   "no decision".
 *
 *   The query helpers are asmtpd's (docs/facts.md "Script helpers"); each function runs
 *       "$ASMTPD_NODE" "$ASMTPD_HELPER" NAME "$@"
 *   with the script's environment (the daemon puts ASMTPD_NODE, ASMTPD_HELPER and ASMTPD_DNS
 *   there) and returns its exit code; without ASMTPD_NODE/ASMTPD_HELPER it says so and returns 2.
 *   spf MECHANISM…           prints the SPF result word; 0 pass, 1 other result, 2 bad usage
 *   dns [-t TYPE] NAME       prints the answers; 0 answers, 1 none, 2 temporary failure/usage
 *   rbl ZONE…                prints "ZONE REASON" per listing; 0 listed, 1 not, 2 all failed/usage
 *
 * PUBLIC
 *   SHELL_PRELUDE, PRELUDE_SCRIPT_FD, DECISION_FD
 *   parseDecision(bytes) → { decision, error }
 *
 * SECURITY
 *   The prelude is a constant: no request value is ever part of the shell text. The script's
 *   path is $0 (an argument), its contents come from fd 4, everything else is environment.
 *   The helpers get their arguments as argv ("$@"), never re-parsed by a shell.
 */
import type { ScriptDecision, DecisionVerb } from './protocol.js';

/** The descriptor the decision functions write to. */
export const DECISION_FD = 3;
/** The descriptor holding the checked script (an O_PATH handle, re-opened through /dev/fd/4). */
export const PRELUDE_SCRIPT_FD = 4;

export const SHELL_PRELUDE = [
  `_avenger_decide() { printf '%s\\0' "$#" "$@" >&${DECISION_FD} || exit 75; exit 0; }`,
  `accept() { _avenger_decide accept \${1+"$*"}; }`,
  `reject() { _avenger_decide reject \${1+"$*"}; }`,
  `defer() { _avenger_decide defer \${1+"$*"}; }`,
  `redirect() { if [ $# -ne 1 ] || [ -z "$1" ]; then echo "redirect: usage: redirect ADDRESS" >&2; exit 64; fi; _avenger_decide redirect "$1"; }`,
  `bodytest() { if [ $# -lt 1 ] || [ -z "$1" ]; then echo "bodytest: usage: bodytest COMMAND [ARG...]" >&2; exit 64; fi; _avenger_decide bodytest "$@"; }`,
  `errcheck() { case "\${MAIL_ERROR-}" in '') return 0 ;; 5*) reject "$MAIL_ERROR" ;; *) defer "$MAIL_ERROR" ;; esac; }`,
  `_asmtpd_helper() { if [ -z "\${ASMTPD_NODE-}" ] || [ -z "\${ASMTPD_HELPER-}" ]; then echo "$1: not available (ASMTPD_HELPER is not set)" >&2; return 2; fi; "$ASMTPD_NODE" "$ASMTPD_HELPER" "$@"; }`,
  `spf() { _asmtpd_helper spf "$@"; }`,
  `dns() { _asmtpd_helper dns "$@"; }`,
  `rbl() { _asmtpd_helper rbl "$@"; }`,
  `. /dev/fd/${PRELUDE_SCRIPT_FD}`,
  '',
].join('\n');

const ARG_COUNTS: Record<DecisionVerb, { min: number; max: number }> = {
  accept: { min: 0, max: 1 },
  reject: { min: 0, max: 1 },
  defer: { min: 0, max: 1 },
  redirect: { min: 1, max: 1 },
  bodytest: { min: 1, max: Infinity },
};

function isVerb(word: string): word is DecisionVerb {
  return Object.hasOwn(ARG_COUNTS, word);
}

/**
 * Reads the first record of the decision channel. Later records (a decision made in a subshell
 * that did not end the script, then another) are ignored: the first one written wins.
 * Empty input → { decision: null, error: null }.
 */
export function parseDecision(bytes: Buffer): { decision: ScriptDecision | null; error: string | null } {
  if (bytes.length === 0) return { decision: null, error: null };
  const fields: string[] = [];
  let start = 0;
  let count = -1;
  while (count < 0 || fields.length < count) {
    const end = bytes.indexOf(0, start);
    if (end < 0) return { decision: null, error: 'truncated decision record' };
    const field = bytes.toString('utf8', start, end);
    start = end + 1;
    if (count < 0) {
      if (!/^[1-9][0-9]{0,5}$/.test(field)) return { decision: null, error: 'malformed decision record' };
      count = Number(field);
    } else {
      fields.push(field);
    }
  }
  const [verb, ...args] = fields;
  if (verb === undefined || !isVerb(verb)) return { decision: null, error: `unknown decision ${JSON.stringify(verb)}` };
  const { min, max } = ARG_COUNTS[verb];
  if (args.length < min || args.length > max) return { decision: null, error: `${verb}: wrong number of arguments` };
  if ((verb === 'redirect' || verb === 'bodytest') && args[0] === '')
    return { decision: null, error: `${verb}: empty argument` };
  return { decision: { verb, args }, error: null };
}
