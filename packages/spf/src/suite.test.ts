/*
 * suite.test.ts — the OpenSPF RFC 7208 and RFC 4408 suites and the blitiri suite, run as data
 * against an in-memory resolver built from each scenario's zone. Exceptions (rfc4408 where
 * RFC 7208 changed the answer, blitiri where it contradicts RFC 7208) are asserted with the
 * RFC 7208 answer, not skipped; see testing/suites.ts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkMailFrom } from './check-host.js';
import { loadSuite, MemoryResolver } from './testing/zone.js';
import { DEFAULT_SENTINEL, expectedResults, EXCEPTIONS, SUITES, type SuiteName } from './testing/suites.js';

for (const suite of Object.keys(SUITES) as SuiteName[]) {
  describe(`${suite} suite (in-memory zone)`, () => {
    const scenarios = loadSuite(SUITES[suite]);
    let count = 0;
    for (const sc of scenarios) {
      for (const t of sc.tests) {
        count++;
        test(`${sc.description} / ${t.name}`, async () => {
          const r = await checkMailFrom(t.host, t.mailfrom, t.helo, {
            resolver: new MemoryResolver(sc.zone),
            receiver: 'receiver.example',
            defaultExplanation: DEFAULT_SENTINEL,
          });
          const want = expectedResults(suite, t);
          assert.ok(
            want.includes(r.result),
            `${t.name}: got ${r.result} (${r.problem ?? r.mechanism ?? ''}), want ${want.join('|')}`,
          );
          if (t.explanation !== undefined && EXCEPTIONS[`${suite}/${t.name}`] === undefined) {
            assert.equal(r.explanation, t.explanation, `${t.name}: explanation`);
          }
        });
      }
    }
    test(`${suite}: test count`, () => {
      const expected = { rfc7208: 203, rfc4408: 191, blitiri: 21 }[suite];
      assert.equal(count, expected);
    });
  });
}
