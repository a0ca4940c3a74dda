/*
 * doh-request.ts — the HTTP request function tangerine uses, built on node:http/node:https.
 *
 * Public: createDohRequest(options?) -> request(url, options) with undici.request's shape
 *   ({statusCode, headers, body: Buffer}). tangerine only loads undici (an optional peer
 *   dependency, not installed here) when no request function is given; this one keeps
 *   connections alive (one pool per process) and honours the AbortSignal tangerine uses for
 *   its timeouts.
 * Security: requests only the URLs tangerine builds from the configured servers; TLS
 *   verification stays on for https.
 */
import http from 'node:http';
import https from 'node:https';

export interface DohRequestOptions {
  /** sockets per server; default 64 */
  maxSockets?: number;
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | Uint8Array;
  signal?: AbortSignal;
  localAddress?: string;
}

export interface DohResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export type DohRequest = (url: string, options: RequestOptions) => Promise<DohResponse>;

export function createDohRequest(options: DohRequestOptions = {}): DohRequest {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
  const httpAgent = new http.Agent(agentOptions);
  const httpsAgent = new https.Agent(agentOptions);
  const once = (url: string, o: RequestOptions): Promise<DohResponse> =>
    new Promise<DohResponse>((resolve, reject) => {
      const u = new URL(url);
      const secure = u.protocol === 'https:';
      const mod = secure ? https : http;
      if (o.signal?.aborted) {
        reject(Object.assign(new Error('aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
        return;
      }
      const req = mod.request(
        u,
        {
          method: o.method ?? 'GET',
          headers: o.headers,
          agent: secure ? httpsAgent : httpAgent,
          ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            o.signal?.removeEventListener('abort', onAbort);
            resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        },
      );
      const onAbort = (): void => {
        req.destroy(Object.assign(new Error('aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: Error & { reusedSocket?: boolean }) => {
        err.reusedSocket = req.reusedSocket;
        o.signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      req.end(o.body);
    });
  // A kept-alive connection the server closed while idle fails the next request on it before any
  // answer (ECONNRESET/EPIPE on a reused socket): send it once more on a new connection (a DNS
  // query is idempotent), instead of failing the lookup as a temporary DNS error.
  return (url, o) =>
    once(url, o).catch((err: Error & { code?: string; reusedSocket?: boolean }) => {
      if (err.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !o.signal?.aborted)
        return once(url, o);
      throw err;
    });
}
