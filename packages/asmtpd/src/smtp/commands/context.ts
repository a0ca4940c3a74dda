/**
 * context.ts — what every command handler gets from the front end, and how it answers with a 2xx.
 *
 *   CommandDeps       the runtime, our version, and the Session / ConnState of an smtp-server session
 *   succeed(d, session, reply, cb)   answer with a 2xx Reply value
 *
 * Each SMTP command has its file (connect.ts, helo.ts, mail.ts, rcpt.ts, data.ts): facts → policy
 * → reply → relay for that command, answering through smtp-server's callback with a Reply value
 * (ReplyAsError for failures) and logging one decision line.
 */
import type { SMTPServerSession } from 'smtp-server';
import type { Reply } from '../../reply/reply.js';
import { answerSuccessWith } from '../boundary.js';
import type { ConnState } from '../connections.js';
import type { Session } from '../session.js';
import type { Runtime } from '../runtime.js';

export interface CommandDeps {
  runtime(): Runtime;
  version: string;
  sessionOf(s: SMTPServerSession): Session | null;
  connOf(s: SMTPServerSession): ConnState | null;
  clearDeadline(st: ConnState): void;
}

export type Callback = (err?: Error | null, message?: string) => void;

/** Answer a command with a 2xx Reply value (smtp-server's callback only carries errors). */
export function succeed(d: CommandDeps, session: SMTPServerSession, r: Reply, cb: Callback): void {
  const st = d.connOf(session);
  if (st) answerSuccessWith(st.conn, r);
  cb();
}
