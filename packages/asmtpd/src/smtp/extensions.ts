/**
 * extensions.ts — which SMTP extensions asmtpd offers, and the MAIL/RCPT parameters it takes.
 *
 *   advertised(runtime)           SMTPUTF8, 8BITMIME and the SIZE limit for the EHLO reply: as far as
 *                                 the downstream offers them (its EHLO/LHLO, relay capabilities()),
 *                                 SIZE the smaller of MaxMsgSize and the downstream's. A downstream
 *                                 not reached yet offers nothing of them; a relay without a
 *                                 downstream EHLO (Sendmail, the hold queue) takes everything.
 *   applyAdvertised(options, rt)  sets smtp-server's hideSMTPUTF8 / hide8BITMIME / size options
 *   mailParamProblem(args, rt)    the reply refusing MAIL for its parameters, or null:
 *                                   SMTPUTF8 not offered → 555 5.6.7 (RFC 6531: the message needs
 *                                   an extension the downstream lacks; refused before any DATA)
 *                                   BODY=8BITMIME not offered → 555 5.6.3; unknown parameter
 *                                   (FOO=bar, RET=, ENVID=…) → 555 5.5.4 (RFC 5321 §4.1.1.11);
 *                                   AUTH= is taken and ignored with an AuthFile (RFC 4954 §5: an
 *                                   authenticated client's MTA sends it; its identity is not trusted)
 *   rcptParamProblem(args)        RCPT takes no parameter here (DSN is not offered): 555 5.5.4
 *
 * SIZE over the limit is smtp-server's own 552 (it reads options.size), BODY values other than
 * 7BIT/8BITMIME its 501. A duplicate parameter is caught by the path parser (path.ts): 501 5.5.4.
 */
import { type Reply } from '../reply/reply.js';
import type { Runtime } from './runtime.js';
import { REPLIES } from '../reply/catalogue.js';

export interface Advertised {
  smtputf8: boolean;
  eightBitMime: boolean;
  size: number;
}

export function advertised(rt: Runtime): Advertised {
  const max = rt.config.maxMsgSizeBytes;
  if (!rt.relay.capabilities) return { smtputf8: true, eightBitMime: true, size: max };
  const caps = rt.relay.capabilities();
  if (!caps) return { smtputf8: false, eightBitMime: false, size: max };
  return {
    smtputf8: caps.smtputf8,
    eightBitMime: caps.eightBitMime,
    size: caps.sizeLimit > 0 ? Math.min(max, caps.sizeLimit) : max,
  };
}

export function applyAdvertised(options: Record<string, unknown>, rt: Runtime): Advertised {
  const a = advertised(rt);
  options.hideSMTPUTF8 = !a.smtputf8;
  options.hide8BITMIME = !a.eightBitMime;
  options.size = a.size;
  return a;
}

export function mailParamProblem(args: Record<string, string | true> | false | undefined, rt: Runtime): Reply | null {
  if (!args) return null;
  const a = advertised(rt);
  for (const [key, value] of Object.entries(args)) {
    if (key === 'SIZE') continue;
    if (key === 'AUTH' && rt.auth !== null) continue;
    if (key === 'BODY') {
      if (typeof value === 'string' && value.toUpperCase() === '8BITMIME' && !a.eightBitMime) {
        return REPLIES.eightBitNotOffered();
      }
      continue;
    }
    if (key === 'SMTPUTF8') {
      if (!a.smtputf8) return REPLIES.smtputf8NotOffered();
      continue;
    }
    return REPLIES.mailParamUnknown(key);
  }
  return null;
}

export function rcptParamProblem(args: Record<string, string | true> | false | undefined): Reply | null {
  if (!args) return null;
  const key = Object.keys(args)[0];
  return key === undefined ? null : REPLIES.rcptParamUnknown(key);
}
