// The official MCP TypeScript SDK against airlock mcp (2025-11-25 over
// Streamable HTTP or stdio). Reads the calls as JSON on stdin; prints one
// JSON line: tools listed and each call's [isError, text, progress,
// result_ms]. A call with "progress": true asks for progress (the SDK sends a
// progressToken); what arrived is listed as [ms, progress, total, message],
// ms since the call was sent.
// usage: node client.mjs http URL KEY | node client.mjs stdio CMD [ARGS...]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [kind, ...rest] = process.argv.slice(2);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const calls = JSON.parse(input);

const transport =
  kind === "http"
    ? new StreamableHTTPClientTransport(new URL(rest[0]), {
        requestInit: rest[1] ? { headers: { Authorization: `Bearer ${rest[1]}` } } : {},
      })
    : new StdioClientTransport({ command: rest[0], args: rest.slice(1), stderr: "inherit" });
const client = new Client({ name: "airlock-sdk-test", version: "1.0.0" });
await client.connect(transport);
const out = { protocol: client.getServerVersion() ? "connected" : "", calls: [] };
const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name);
for (const c of calls) {
  const seen = [];
  const sent = performance.now();
  const options = c.progress
    ? { onprogress: (p) => seen.push([Math.round(performance.now() - sent), p.progress, p.total ?? null, p.message ?? null]) }
    : undefined;
  const r = await client.callTool({ name: c.name, arguments: c.args, _meta: c.meta }, undefined, options);
  const done = Math.round(performance.now() - sent);
  out.calls.push([Boolean(r.isError), r.content?.[0]?.text ?? "", seen, done]);
}
console.log(JSON.stringify(out));
await client.close();
