// Official MCP TypeScript SDK client: lists and calls `add` through the tunnel.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
const [url, key] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "airlock-test", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const r = await client.callTool({ name: "add", arguments: { a: 2, b: 3 } });
console.log("OK", tools.tools.map((t) => t.name).join(","), r.content[0].text);
await client.close();
