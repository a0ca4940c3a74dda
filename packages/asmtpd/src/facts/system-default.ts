/**
 * system-default.ts — the reply asmtpd would give by itself (MAIL_ERROR; spec asmtpd.md §4
 * "System-default verdict", docs/facts.md). The first that applies:
 *
 *   1. DNSBL score ≥ RBLThreshold            550 5.7.1 listed by ZONES: REASONS
 *   2. SPF fail with SPFRejectFail            550 5.7.23 SPF: EXPLANATION
 *   3. the bounce probe was refused           550 5.1.8 bounces to SENDER are refused: REPLY
 *   4. a dynamic-looking name with DynamicNameReject
 *                                             451 4.7.1 client host name NAME looks dynamic: …
 *   5. temporary DNS failure, AllowDNSFailures no
 *                                             451 4.4.3 temporary DNS failure: WHAT
 *
 *   systemDefault(facts, config, sender) -> Reply | null
 */
import type { Config } from '../config/types.js';
import { type Reply } from '../reply/reply.js';
import type { FactValues } from './client-facts.js';
import { rblMailError } from './rbl-verdict.js';
import { parseReply } from '../reply/reply.js';
import { REPLIES } from '../reply/catalogue.js';

type Settings = Pick<Config, 'rblThreshold' | 'spfRejectFail' | 'dynamicNameReject' | 'allowDnsFailures'>;

export function systemDefault(f: FactValues, config: Settings, sender: string, clientIp: string): Reply | null {
  const listed = f.rbl ? rblMailError(f.rbl, config.rblThreshold) : null;
  if (listed !== null) return parseReply(listed, 550, '5.7.1');
  if (config.spfRejectFail && f.spf?.result === 'fail') {
    return f.spf.explanation !== undefined && f.spf.explanation !== null
      ? REPLIES.spfFail(f.spf.explanation)
      : REPLIES.spfNotPermitted(f.spf.domain, clientIp);
  }
  if (f.bounce?.kind === 'refused') return REPLIES.bouncesRefused(sender, f.bounce.reply);
  if (config.dynamicNameReject && f.reverse?.dynamic && f.reverse.name !== null)
    return REPLIES.dynamicName(f.reverse.name);
  if (!config.allowDnsFailures) {
    if (f.reverse?.tempfail) return REPLIES.dnsTempfailReverse(clientIp);
    if (f.spf?.result === 'temperror') return REPLIES.dnsTempfailSpf(f.spf.domain);
  }
  return null;
}
