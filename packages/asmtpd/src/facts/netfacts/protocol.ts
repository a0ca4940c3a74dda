/**
 * protocol.ts — what the daemon and its network facts process (process.ts) say to each other:
 * JSON, one object a line, over the process's stdin (daemon → process) and stdout (process →
 * daemon), like the avenger runner. Diagnostics go to the process's stderr (logged as netfacts.log).
 *
 * process → daemon
 *   {"kind":"ready","version":1,"pid":N,"uid":0,"netRaw":true,"capture":CaptureState}   once, first
 *   {"kind":"capture","capture":CaptureState}     after each capture request
 *   {"kind":"syn","syn":SynInfo}                  one per captured SYN (facts/synfp/syn-packet.ts)
 *   {"kind":"result","id":N,"route":RouteFact}    a route request answered
 *   {"kind":"result","id":N,"error":"…"}          a route request failed (no answer, no permission…)
 * daemon → process
 *   {"op":"capture","on":true|false}              start/stop capturing SYNs to the ports given at start
 *   {"id":N,"op":"route","ip":"…","maxHops":1-64,"timeoutMs":100-60000}
 *   end of stdin                                  stop: the process closes its sockets and exits
 *
 * CaptureState: "on", "off", or the reason capture failed ("capturing SYNs needs CAP_NET_RAW …").
 * The process checks every request (validateRequest) and answers a bad one with an error result
 * (id null when the id itself is bad); it never trusts anything but its stdin.
 */
import { LineSplitter as RunnerLineSplitter } from '@asmtpd/avenger-runner';
import { isIP } from 'node:net';
import type { RouteFact } from '../client-facts.js';
import type { SynInfo } from '../synfp/syn-packet.js';

export const NETFACTS_PROTOCOL_VERSION = 1;
export const MAX_ROUTE_HOPS = 64;
export const MAX_ROUTE_TIMEOUT_MS = 60_000;
/** longest line either side accepts; a SYN is ~400 bytes of JSON, a route of 64 IPv6 hops ~3 KiB */
export const MAX_LINE_BYTES = 64 * 1024;

export type CaptureState = 'on' | 'off' | string;

export type ProcessMessage =
  | { kind: 'ready'; version: number; pid: number; uid: number; netRaw: boolean; capture: CaptureState }
  | { kind: 'capture'; capture: CaptureState }
  | { kind: 'syn'; syn: SynInfo }
  | { kind: 'result'; id: number | null; route: RouteFact }
  | { kind: 'result'; id: number | null; error: string };

export type Request =
  | { op: 'capture'; on: boolean }
  | { id: number; op: 'route'; ip: string; maxHops: number; timeoutMs: number };

export function validateRequest(
  value: unknown,
): { ok: true; request: Request } | { ok: false; id: number | null; reason: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, id: null, reason: 'bad request: not an object' };
  const v = value as Record<string, unknown>;
  if (v.op === 'capture') {
    if (typeof v.on !== 'boolean') return { ok: false, id: null, reason: 'bad request: capture needs on: true|false' };
    return { ok: true, request: { op: 'capture', on: v.on } };
  }
  const id = typeof v.id === 'number' && Number.isSafeInteger(v.id) && v.id >= 0 ? v.id : null;
  if (v.op !== 'route') return { ok: false, id, reason: `bad request: unknown op ${JSON.stringify(v.op)}` };
  if (id === null) return { ok: false, id, reason: 'bad request: route needs a numeric id' };
  if (typeof v.ip !== 'string' || v.ip.length > 64 || isIP(v.ip) === 0)
    return { ok: false, id, reason: 'bad request: ip is not an IP address' };
  const { maxHops, timeoutMs } = v;
  if (typeof maxHops !== 'number' || !Number.isInteger(maxHops) || maxHops < 1 || maxHops > MAX_ROUTE_HOPS) {
    return { ok: false, id, reason: `bad request: maxHops must be 1-${MAX_ROUTE_HOPS}` };
  }
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < 100 ||
    timeoutMs > MAX_ROUTE_TIMEOUT_MS
  ) {
    return { ok: false, id, reason: `bad request: timeoutMs must be 100-${MAX_ROUTE_TIMEOUT_MS}` };
  }
  return { ok: true, request: { id, op: 'route', ip: v.ip, maxHops, timeoutMs } };
}

/** Splits a stream into lines; a line longer than MAX_LINE_BYTES is an error (the peer is broken). */
export class LineSplitter extends RunnerLineSplitter {
  constructor() {
    super(MAX_LINE_BYTES);
  }
}

/** Is this a SynInfo as process.ts sends it? (the daemon checks what it formats) */
export function isSynInfo(v: unknown): v is SynInfo {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  const int = (x: unknown, max: number): boolean => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
  return (
    (s.family === 4 || s.family === 6) &&
    typeof s.srcIp === 'string' &&
    typeof s.dstIp === 'string' &&
    int(s.srcPort, 0xffff) &&
    int(s.dstPort, 0xffff) &&
    int(s.ttl, 255) &&
    (s.df === 0 || s.df === 1) &&
    int(s.totalLength, 0xffff) &&
    int(s.window, 0xffff) &&
    Array.isArray(s.options) &&
    s.options.every(
      (o: unknown) => typeof o === 'object' && o !== null && typeof (o as { kind?: unknown }).kind === 'string',
    ) &&
    (s.mss === null || int(s.mss, 0xffff)) &&
    Array.isArray(s.quirks)
  );
}
