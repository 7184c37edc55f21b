// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
// package.json) against `wharf mcp --http` serving the conformance guest
// (crates/test-programs/src/bin/mcp_conformance.rs) with the tool names the suite calls:
//
//   node conformance.mjs
//
// Inputs (environment): WHARF_BIN, MCP_CONFORMANCE, optionally WHARF_CACHE_DIR. Every server
// scenario must pass except those in expected-failures.yml (features Wharf does not advertise);
// the suite itself fails on a stale entry there too.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
};

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function main() {
  const port = await freePort();
  const args = ['mcp', '--http', `127.0.0.1:${port}`, '--timeout', '10s', '--tool-names', 'underscore', `=${env('MCP_CONFORMANCE')}`];
  const log = [];
  const wharf = spawn(env('WHARF_BIN'), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WHARF_LOG: process.env.WHARF_LOG ?? 'info' },
  });
  wharf.stdout.on('data', (d) => log.push(d.toString()));
  wharf.stderr.on('data', (d) => log.push(d.toString()));
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (wharf.exitCode !== null) throw new Error(`wharf exited with ${wharf.exitCode}:\n${log.join('')}`);
      const up = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error(`wharf did not listen:\n${log.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const suite = path.join(here, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
    const code = await new Promise((resolve) => {
      const run = spawn(
        process.execPath,
        [suite, 'server', '--url', `http://127.0.0.1:${port}/mcp`, '--expected-failures', path.join(here, 'expected-failures.yml')],
        { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` } },
      );
      run.on('exit', (code) => resolve(code));
    });
    if (code !== 0) {
      console.error(`conformance suite exited with ${code}; wharf's log:\n${log.join('').slice(-20000)}`);
      process.exit(1);
    }
  } finally {
    wharf.kill('SIGKILL');
  }
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
