# Official MCP Python SDK client: lists and calls a tool; prints OK VERSION TOOLS RESULT.
import asyncio, sys, httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
async def main(url, key, mode):
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"})
    async with Client(streamable_http_client(url, http_client=hc), mode=mode) as c:
        tools = await c.list_tools()
        r = await c.call_tool("add", {"a": 2, "b": 3})
        print("OK", c.protocol_version, [t.name for t in tools.tools], r.content[0].text)
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
