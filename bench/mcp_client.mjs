// MCP call latency from the official TypeScript SDK (@modelcontextprotocol/sdk, as installed by
// scripts/setup.sh under crates/wharf/tests/mcp-js). Used by bench/mcp.sh; prints one JSON line
// per run, in the same shape as bench/mcp_client.py.
//
//   node bench/mcp_client.mjs LABEL stdio N CLIENTS TOOL ARGS_JSON -- COMMAND...
//   node bench/mcp_client.mjs LABEL http  N CLIENTS TOOL ARGS_JSON URL
//
// CLIENTS clients (their own connection each) call TOOL N times each, concurrently, after a
// warm-up of 50 calls per client.
const sdk = (path) =>
  import(new URL(`../crates/wharf/tests/mcp-js/node_modules/@modelcontextprotocol/sdk/dist/esm/${path}`, import.meta.url));
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const WARMUP = 50;
const [label, transport, n, clients, tool, argsJson, ...rest] = process.argv.slice(2);
const args = JSON.parse(argsJson);
const target = rest[0] === '--' ? rest.slice(1) : rest;

function connect() {
  if (transport === 'stdio') {
    return new StdioClientTransport({ command: target[0], args: target.slice(1), env: process.env, stderr: 'ignore' });
  }
  return new StreamableHTTPClientTransport(new URL(target[0]));
}

const samples = [];
const versions = new Set();
async function oneClient() {
  const client = new Client({ name: 'wharf-bench', version: '0' });
  const conn = connect();
  // The client tells an HTTP transport the negotiated version; a stdio one learns it this way.
  const set = conn.setProtocolVersion?.bind(conn);
  conn.setProtocolVersion = (version) => { versions.add(version); set?.(version); };
  await client.connect(conn);
  for (let i = 0; i < WARMUP; i++) await client.callTool({ name: tool, arguments: args });
  for (let i = 0; i < Number(n); i++) {
    const start = performance.now();
    const result = await client.callTool({ name: tool, arguments: args });
    samples.push(performance.now() - start);
    if (result.isError) throw new Error(`${tool} failed: ${JSON.stringify(result)}`);
  }
  await client.close();
}

await Promise.all(Array.from({ length: Number(clients) }, oneClient));
samples.sort((a, b) => a - b);
const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
const pct = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
console.log(JSON.stringify({
  label, client: 'TypeScript SDK', transport, clients: Number(clients), calls: samples.length,
  protocol: [...versions].sort().join('/'), p50_ms: pct(0.5), p99_ms: pct(0.99),
  // Throughput while measuring (connects and warm-up excluded): clients / mean latency.
  mean_ms: mean, calls_per_s: (Number(clients) * 1000) / mean,
}));
