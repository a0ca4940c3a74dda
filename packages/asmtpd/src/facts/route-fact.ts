/**
 * route-fact.ts — a traced route (NetPath) and what scripts and headers see of it. Pure, so that
 * the table of script variables (policy/variables.ts) stays light enough for the script runner.
 */
export interface RouteFact {
  hops: number;
  /** router addresses in order; '*' for a hop that did not answer */
  path: string[];
}

/**
 * What scripts and X-Avenger see of a route: the routers between us and the client (the client's
 * own address, which ends a trace that reached it, is not a router), and their count — the same
 * distance the SYN's TTL gives (initial TTL − observed: the routers that decremented it).
 */
export function routersOf(route: RouteFact, clientIp: string): string[] {
  return route.path.at(-1) === clientIp ? route.path.slice(0, -1) : route.path;
}
