// `wharf:mcp/context` over stdio with the TypeScript SDK (the conformance suite covers HTTP):
// content blocks, progress, log messages, sampling, and `notifications/cancelled` stopping a
// running guest.
//
//   node talk.mjs
//
// Inputs (environment): WHARF_BIN, MCP_CONFORMANCE, optionally WHARF_CACHE_DIR.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const client = new Client({ name: 'wharf-talk-test', version: '0' }, { capabilities: { sampling: {} } });
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
    role: 'assistant',
    content: { type: 'text', text: `echo: ${request.params.messages[0].content.text}` },
    model: 'test-model',
  }));
  const transport = new StdioClientTransport({
    command: env('WHARF_BIN'),
    args: ['mcp', '--timeout', '20s', '--tool-names', 'underscore', `conf=${env('MCP_CONFORMANCE')}`],
    env: { ...process.env, WHARF_LOG: process.env.WHARF_LOG ?? 'warn' },
    stderr: 'inherit',
  });
  await client.connect(transport);
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('conf_test_image_content') && names.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n)), `${names}`);
    assert.ok(client.getServerCapabilities().logging, 'logging is advertised');

    const mixed = await client.callTool({ name: 'conf_test_multiple_content_types', arguments: {} });
    assert.deepEqual(mixed.content.map((c) => c.type), ['text', 'image', 'resource']);
    assert.equal(Buffer.from(mixed.content[1].data, 'base64').subarray(1, 4).toString(), 'PNG');
    assert.equal(mixed.content[2].resource.text, '{"test":"data","value":123}');

    const progress = [];
    await client.callTool({ name: 'conf_test_tool_with_progress', arguments: {} }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    // All three arrive in order; the SDK may drop one handled after the result (see the guest).
    assert.deepEqual(progress.slice(0, 2), [0, 50], `progress ${progress}`);
    assert.ok(progress.length <= 3 && (progress.length < 3 || progress[2] === 100), `progress ${progress}`);

    const sampled = await client.callTool({ name: 'conf_test_sampling', arguments: { prompt: 'hi' } });
    assert.equal(sampled.structuredContent.result.ok, 'LLM response: echo: hi');

    // Log messages obey logging/setLevel.
    await client.setLoggingLevel('warning');
    await client.callTool({ name: 'conf_test_tool_with_logging', arguments: {} });
    assert.equal(logs.length, 0, `info messages below "warning" were sent: ${JSON.stringify(logs)}`);
    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'conf_test_tool_with_logging', arguments: {} });
    assert.deepEqual(logs.map((l) => l.data), ['Tool execution started', 'Tool processing data', 'Tool execution completed']);

    // Cancelling a call stops the guest: its once-per-50-ms log messages stop, long before
    // the 20 s timeout, and the server goes on serving.
    logs.length = 0;
    const abort = new AbortController();
    const started = Date.now();
    const waiting = client.callTool({ name: 'conf_wait_for_cancel', arguments: {} }, undefined, { signal: abort.signal });
    await sleep(500);
    abort.abort('test cancels');
    await assert.rejects(waiting);
    const ticks = logs.length;
    assert.ok(ticks >= 3, `the guest ran before the cancel (${ticks} ticks)`);
    await sleep(600);
    assert.ok(logs.length <= ticks + 1, `the guest kept running after the cancel: ${ticks} -> ${logs.length} ticks`);
    assert.ok(Date.now() - started < 5000);
    const simple = await client.callTool({ name: 'conf_test_simple_text', arguments: {} });
    assert.equal(simple.structuredContent.result, 'This is a simple text response for testing.');
    console.log(`talk: content, progress, logs, sampling and cancel ok (${ticks} ticks before cancel, ${logs.length} after)`);
  } finally {
    await client.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`FAILED: ${e.stack ?? e}`);
    process.exit(1);
  },
);
