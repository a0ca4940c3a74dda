/** docs/avenger.md lists exactly the variables of the table (docs-sync), and values stay data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SCRIPT_VARIABLES, scriptEnvironment, type EnvContext } from './variables.js';

test('docs/avenger.md documents every script variable, and no other', () => {
  const doc = readFileSync(new URL('../../../../docs/avenger.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Environment'));
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(
    documented,
    SCRIPT_VARIABLES.map((v) => v.name),
  );
});

test('scriptEnvironment: values byte-exact, unknown facts absent', () => {
  const ctx: EnvContext = {
    connection: {
      client: { ip: '192.0.2.1', port: 4000 },
      local: { ip: '192.0.2.2', port: 25 },
      helo: null,
      pipelining: null,
      post: false,
      tls: null,
      authUser: null,
    },
    sender: '"$(id)"@evil.example',
    rcpt: { address: 'bob+x@ex.example', user: 'bob', home: '/home/bob', extension: 'x', default: null },
    avengerUser: 'avenger',
    mailError: null,
    tmpDir: '/tmp',
    facts: null,
  };
  const env = scriptEnvironment(ctx);
  assert.equal(env.SENDER, '"$(id)"@evil.example');
  assert.equal(env.SENDER_LOCAL, '"$(id)"');
  assert.equal(env.SENDER_HOST, 'evil.example');
  assert.equal(env.EXTENSION, 'x');
  assert.ok(!('CLIENT_HELO' in env) && !('MAIL_ERROR' in env) && !('DEFAULT' in env));
});
