/**
 * helo.ts — HELO and EHLO. smtp-server answers them itself (EHLO's keywords: extensions.ts
 * applyAdvertised, set per connection in front-end.ts); what a transaction keeps of them is the
 * name the client gave and the protocol (SMTP after HELO, ESMTP after EHLO), read at MAIL.
 *
 *   recordHelo(session, s)
 */
import type { SMTPServerSession } from 'smtp-server';
import type { Session } from '../session.js';

/** The HELO/EHLO name and protocol as smtp-server saw them, into the Session. */
export function recordHelo(session: SMTPServerSession, s: Session): void {
  const helo = (session as { hostNameAppearsAs?: string | false }).hostNameAppearsAs;
  s.helo = helo ? helo : null;
  s.proto = session.openingCommand === 'HELO' ? 'SMTP' : 'ESMTP';
}
