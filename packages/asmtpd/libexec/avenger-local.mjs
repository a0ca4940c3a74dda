#!/usr/bin/env node
// avenger.local's entry (tools/avenger.local runs it: Node loads no file named *.local as a module).
// docs/man/avenger.local.1.md. SIGUSR1 would open Node's inspector: neutralised first, as in every Node process of asmtpd
process.on('SIGUSR1', () => {});
const { runTool } = await import('../dist/tools/tool-io.js');
const { main } = await import('../dist/tools/avenger-local.js');
await runTool('avenger.local', main, { crashExit: 75 });
