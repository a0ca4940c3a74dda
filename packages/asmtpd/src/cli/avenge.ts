/**
 * `asmtpd --avenge [-f FILE] RECIPIENT [SENDER [IP]]` — dry run of the RCPT-time policy: resolve the
 * recipient as the daemon would, run the scripts as the right users (in this process's runner),
 * gather the client facts for IP (reverse DNS, DNSBL, SPF of SENDER, bounce probe) with the
 * configured resolver, print the environment passed, the files tried, the outcome and the SMTP
 * reply. Sends no mail.
 * Exit 0 when the policy ran (whatever it decided), 1 on a local error, 2 on bad usage/config.
 */
import { runInProcess } from '@asmtpd/avenger-runner';
import { isIP } from 'node:net';
import { buildRuntime } from '../smtp/runtime.js';
import { decideRecipient, type RecipientDecision } from '../policy/decide.js';
import type { Route } from '../recipients/route.js';
import { formatReply } from '../reply/reply.js';
import type { Session } from '../smtp/session.js';
import { nullLogger } from '../log/logger.js';
import { systemDefault } from '../facts/system-default.js';
import { helperEnvironment } from '../daemon/script-helper-env.js';
import { memoryProbers } from '../daemon/probers.js';
import type { Config } from '../config/types.js';
import type { Relay } from '../relay/types.js';
import { serviceAccounts } from '../daemon/service-accounts.js';
import { runnerIds, runnerSettings } from '../daemon/runner-settings.js';
import { REPLIES } from '../reply/catalogue.js';

async function refuseToCreate(): Promise<void> {
  throw new Error('--avenge creates no accounts');
}

export interface AvengeArgs {
  recipient: string;
  sender: string;
  ip: string;
}

export async function runAvenge(config: Config, args: AvengeArgs, out: NodeJS.WritableStream): Promise<number> {
  if (!isIP(args.ip)) {
    out.write(`asmtpd: --avenge: ${JSON.stringify(args.ip)} is not an IP address\n`);
    return 2;
  }
  const noRelay: Relay = {
    deliver: async () => ({ kind: 'deferred', reply: REPLIES.noDeliveryInAvenge(), ms: 0 }),
    close: async () => {},
    describe: () => 'none',
  };
  const log = nullLogger();
  const probers = memoryProbers();
  // as root, the same rule as the daemon's runner: scripts never run as asmtpd's own accounts
  // (looked up, never created, by a diagnostic run)
  const found = process.getuid?.() === 0 ? await serviceAccounts(config, { create: refuseToCreate }) : null;
  const settings = runnerSettings(config, runnerIds(found?.kind === 'ok' ? found.accounts : null), {
    bodyTests: false,
  });
  const rt = buildRuntime(config, noRelay, (req) => runInProcess(req, settings), log, {
    helperEnv: helperEnvironment,
    prober: probers.factory,
  });
  const session: Session = {
    id: 'avenge',
    client: { ip: args.ip, port: 0 },
    local: { ip: '0.0.0.0', port: config.smtpPort },
    startedAt: Date.now(),
    helo: null,
    proto: 'ESMTP',
    tls: null,
    proxy: null,
    mayRelay: rt.relayNets.has(args.ip),
    authUser: null,
    authFailures: 0,
    tx: null,
    pipelining: null,
    post: false,
    facts: rt.facts(args.ip, log),
    decisions: new Map(),
    counts: { messages: 0, rcpts: 0, rejected: 0, errors: 0 },
    log,
  };
  const route = await rt.route(args.recipient, session.mayRelay, false);
  out.write(
    `recipient: ${args.recipient}\nsender: ${args.sender || '<>'}\nclient: ${args.ip}${session.mayRelay ? ' (RelayNet)' : ''}\n`,
  );
  out.write(`route: ${describeRoute(route)}\n`);
  if (route.kind === 'denied') {
    out.write(`reply: ${formatReply(route.reason === 'relay' ? REPLIES.relayDenied() : REPLIES.routingChars())}\n`);
    return 0;
  }
  session.facts.connected(0);
  session.facts.mailFrom(args.sender, null);
  const facts = route.kind === 'postmaster' ? null : await session.facts.settle();
  const mailError = facts ? systemDefault(facts, config, args.sender, args.ip) : null;
  const d = await decideRecipient(
    route,
    { connection: session, sender: args.sender, address: args.recipient, mailError, facts },
    rt.policy,
  );
  printDecision(d, out);
  probers.close();
  return d.outcome.kind === 'failed' ? 1 : 0;
}

function describeRoute(r: Route): string {
  switch (r.kind) {
    case 'user':
      return `user ${r.account.name} (uid ${r.account.uid}, home ${r.account.home}), extension ${r.extension === null ? '(none)' : JSON.stringify(r.extension)}, via ${r.via}`;
    case 'postmaster':
      return 'postmaster';
    case 'alias-multiple':
      return `alias ${r.name} with several targets`;
    case 'unknown':
      return `unknown recipient in local domain ${r.domain}`;
    case 'relay':
      return `relay to ${r.domain}`;
    case 'relay-domain':
      return `relay domain ${r.domain}, verified against and delivered to ${r.backend.backends.map((b) => `${b.host}:${b.port}`).join(', ')}`;
    case 'hold-domain':
      return `hold domain ${r.domain}: held until flushed (ETRN, asmtpd --flush) or taken with ATRN`;
    case 'denied':
      return `denied (${r.reason})`;
  }
}

function printDecision(d: RecipientDecision, out: NodeJS.WritableStream): void {
  d.runs.forEach((run, i) => {
    out.write(`\nrun ${i + 1}: as ${run.user} (uid ${run.uid}) in ${run.dir}\n`);
    out.write(`  tried: ${run.tried.length ? run.tried.join(' ') : '(none)'}\n`);
    out.write(`  script: ${run.script ?? '(none found)'}\n`);
    out.write('  environment:\n');
    // ASMTPD_* are the helpers' plumbing (paths of this machine), not facts
    for (const k of Object.keys(run.env)
      .filter((k) => !k.startsWith('ASMTPD_'))
      .sort())
      out.write(`    ${k}=${JSON.stringify(run.env[k])}\n`);
    if (run.stderr) out.write(`  stderr: ${JSON.stringify(run.stderr)}\n`);
    out.write(`  outcome: ${run.outcome}${run.detail ? ` (${run.detail})` : ''}\n`);
  });
  const o = d.outcome;
  const detail =
    o.kind === 'bodytest'
      ? ` ${JSON.stringify(o.argv)}`
      : o.kind === 'redirect'
        ? ` ${o.address}`
        : o.kind === 'failed'
          ? ` (${o.reason})`
          : '';
  out.write(`\noutcome: ${o.kind}${detail}\nreply: ${formatReply(d.reply)}\n`);
}
