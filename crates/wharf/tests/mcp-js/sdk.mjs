// `wharf mcp` driven by the official TypeScript SDK (@modelcontextprotocol/sdk, pinned in
// package.json), over stdio and streamable HTTP. Run by `crates/wharf/tests/all/mcp_js.rs`:
//
//   node sdk.mjs stdio|http
//
// Inputs (environment): WHARF_BIN, MCP_TYPES, MCP_COUNTER, optionally WHARF_CACHE_DIR. Every
// tool of the rich-type guests is called; the SDK itself validates each `structuredContent`
// against the tool's outputSchema (Ajv, draft-07 rules: it ignores `$schema`), so a schema the
// two dialects read differently fails here. Exits non-zero with a message on the first failure.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const mode = process.argv[2];
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
};
const WHARF = env('WHARF_BIN');
const COMPONENTS = [env('MCP_TYPES'), env('MCP_COUNTER')];
const FLAGS = ['--timeout', '2s', '--max-memory', '64MiB'];
// No HTTP exchange may wait for Nagle's algorithm + the client's delayed ACK (40 ms each). Judged
// on `ping` (no guest runs, so a loaded machine barely moves it); tool-call times are printed.
const HTTP_PING_P50_LIMIT_MS = 15;

const P = 'mcp_types.types.';
const C = 'mcp_counter.counters.';
const everything = {
  flag: true,
  ints: { a: 255, b: 65535, c: 4294967295, d: 9007199254740991, e: -128, f: -32768, g: -2147483648, h: -9007199254740991 },
  single: 'NaN',
  double: 0.1,
  letter: 'é',
  text: 'héllo 🦀',
  items: [{ name: 'a', qty: 0, tags: [] }, { name: 'b', qty: 255, tags: ['x', 'y'] }],
  pair: [1, 'one'],
  shape: { rect: [3, 4.5] },
  color: 'green',
  perms: ['read', 'exec'],
  maybe: null,
  nested: { some: null },
  outcome: { err: 'bad' },
  bare: { ok: null },
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

async function waitListening(port, child, log) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wharf exited with ${child.exitCode}:\n${log.join('')}`);
    const ok = await new Promise((resolve) => {
      fetch(`http://127.0.0.1:${port}/`).then(() => resolve(true), () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`wharf did not listen on ${port}:\n${log.join('')}`);
}

async function connect() {
  const client = new Client({ name: 'wharf-ts-sdk-test', version: '0' });
  if (mode === 'stdio') {
    const transport = new StdioClientTransport({
      command: WHARF,
      args: ['mcp', ...FLAGS, ...COMPONENTS],
      env: { ...process.env, WHARF_LOG: process.env.WHARF_LOG ?? 'warn' },
      stderr: 'inherit',
    });
    await client.connect(transport);
    return { client, close: () => client.close() };
  }
  const port = await freePort();
  const log = [];
  const child = spawn(WHARF, ['mcp', '--http', `127.0.0.1:${port}`, ...FLAGS, ...COMPONENTS], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WHARF_LOG: process.env.WHARF_LOG ?? 'warn' },
  });
  child.stdout.on('data', (d) => log.push(d.toString()));
  child.stderr.on('data', (d) => log.push(d.toString()));
  await waitListening(port, child, log);
  // Records how each POSTed request was answered: `application/json` or `text/event-stream`.
  const replies = [];
  const recording = async (url, init) => {
    const response = await fetch(url, init);
    if (init?.method === 'POST') {
      const message = JSON.parse(init.body);
      const what = message.params?.name ?? message.method;
      replies.push({ what, type: response.headers.get('content-type'), id: message.id });
    }
    return response;
  };
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { fetch: recording });
  await client.connect(transport);
  return {
    client,
    replies,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
      child.kill('SIGKILL');
    },
    log,
  };
}

/** Calls `name`; the SDK has already checked structuredContent against outputSchema. */
async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  assert.equal(result.content.length, 1, `${name}: one content block`);
  assert.equal(result.content[0].type, 'text', `${name}: a text block`);
  return result;
}

async function ok(client, name, args) {
  const result = await call(client, name, args);
  assert.ok(!result.isError, `${name}(${JSON.stringify(args)}) failed: ${result.content[0].text}`);
  assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent, `${name}: text == structuredContent`);
  return result.structuredContent.result;
}

async function failsWith(client, name, args, needle) {
  const result = await call(client, name, args);
  assert.ok(result.isError, `${name}(${JSON.stringify(args)}) should fail`);
  assert.ok(result.content[0].text.includes(needle), `${name}: ${JSON.stringify(result.content[0].text)} lacks ${needle}`);
}

async function main() {
  const { client, close, replies } = await connect();
  try {
    const tools = (await client.listTools()).tools;
    const names = new Set(tools.map((t) => t.name));
    const called = new Set();
    const track = (name) => {
      called.add(name);
      return name;
    };

    assert.equal(await ok(client, track('mcp_types.add'), { a: 2, b: 3 }), 5);
    const echoed = await ok(client, track(P + 'echo'), { value: everything });
    assert.deepEqual(echoed.pair, [1, 'one'], 'a tuple comes back (and passed the SDK validator)');
    assert.deepEqual(echoed.shape, { rect: [3, 4.5] });
    assert.equal(await ok(client, track(P + 'total'), { items: everything.items }), 255);
    assert.equal(await ok(client, track(P + 'area'), { shape: { rect: [3, 4] } }), 12);
    assert.deepEqual(await ok(client, track(P + 'divide'), { a: 7, b: 2 }), { ok: 3 });
    const err = await call(client, P + 'divide', { a: 1, b: 0 });
    assert.ok(err.isError);
    assert.deepEqual(err.structuredContent, { result: { err: 'division by zero' } });
    assert.equal(await ok(client, track(P + 'nothing'), {}), undefined);
    assert.equal(await ok(client, track(P + 'chatty'), { lines: 3 }), 3);
    assert.equal(await ok(client, track(P + 'hog'), { mib: 1 }), 1);
    await failsWith(client, track(P + 'spin'), {}, 'timed out after 2s');
    await failsWith(client, track(P + 'crash'), {}, 'crash requested');
    await failsWith(client, 'mcp_types.add', { a: 1 }, 'b: missing field');

    const counter = await ok(client, track(C + 'counter.new'), { start: 5 });
    assert.match(counter, /^counter-[0-9a-f]{32}$/);
    assert.equal(await ok(client, track(C + 'counter.increment'), { self: counter, by: 3 }), 8);
    assert.equal(await ok(client, track(C + 'counter.get'), { self: counter }), 8);
    const fork = await ok(client, track(C + 'counter.fork'), { self: counter });
    assert.equal(await ok(client, track(C + 'sum'), { counters: [counter, fork] }), 16);
    assert.equal(await ok(client, track(C + 'counter.merge'), { into: counter, other: fork }), 16);
    await failsWith(client, C + 'counter.get', { self: fork }, 'unknown handle');

    const missed = [...names].filter((n) => !called.has(n));
    assert.deepEqual(missed, [], 'every tool is called');

    // Latency: 200 sequential calls; over HTTP the p50 must not carry a delayed ACK.
    const times = [];
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      await client.callTool({ name: 'mcp_types.add', arguments: { a: i, b: 1 } });
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    const p10 = times[Math.floor(times.length / 10)];
    const p50 = times[Math.floor(times.length / 2)];
    const p99 = times[Math.floor(times.length * 0.99)];
    console.log(`${mode}: ${tools.length} tools called; 200 calls p10 ${p10.toFixed(2)} ms, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
    const pings = [];
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      await client.ping();
      pings.push(performance.now() - start);
    }
    pings.sort((a, b) => a - b);
    const ping50 = pings[100];
    console.log(`${mode}: 200 pings p50 ${ping50.toFixed(2)} ms`);
    if (mode === 'http') {
      assert.ok(ping50 < HTTP_PING_P50_LIMIT_MS, `HTTP ping p50 ${ping50.toFixed(1)} ms >= ${HTTP_PING_P50_LIMIT_MS} ms (TCP_NODELAY?)`);
      // A reply that is just the response comes as JSON (SSE cost every call); a call still
      // running after a second (`spin`, until --timeout 2s) as a stream, its headers early.
      const typeOf = (what) => new Set(replies.filter((r) => r.what === what && r.id !== undefined).map((r) => r.type));
      for (const what of ['initialize', 'tools/list', 'ping', 'mcp_types.add', P + 'echo', C + 'counter.new']) {
        assert.deepEqual([...typeOf(what)], ['application/json'], `${what} replies: ${[...typeOf(what)]}`);
      }
      assert.deepEqual([...typeOf(P + 'spin')], ['text/event-stream'], `spin replies: ${[...typeOf(P + 'spin')]}`);
    }
  } finally {
    await close();
  }
}

if (mode !== 'stdio' && mode !== 'http') {
  console.error('usage: node sdk.mjs stdio|http');
  process.exit(2);
}
main().then(
  () => process.exit(0),
  (e) => {
    console.error(`FAILED (${mode}): ${e.stack ?? e}`);
    process.exit(1);
  },
);
