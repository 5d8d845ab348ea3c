# The official MCP Python SDK against airlock mcp. Prints one JSON line:
# protocol version, tools listed, and each call's (isError, text).
# usage: client.py http URL KEY MODE | client.py stdio MODE CMD [ARGS...]
import asyncio, json, sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


async def main():
    kind = sys.argv[1]
    if kind == "http":
        url, key, mode = sys.argv[2:5]
        hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) if key else None
        server = streamable_http_client(url, http_client=hc) if hc else streamable_http_client(url)
    else:
        mode = sys.argv[2]
        server = StdioServerParameters(command=sys.argv[3], args=sys.argv[4:])
    calls = json.loads(sys.stdin.read())
    out = {}
    async with Client(server, mode=mode) as c:
        out["protocol"] = str(c.protocol_version)
        tools = await c.list_tools()
        out["tools"] = [t.name for t in tools.tools]
        out["schemas"] = {t.name: t.input_schema for t in tools.tools}
        out["calls"] = []
        for call in calls:
            meta = call.get("meta")
            r = await c.call_tool(call["name"], call["args"], meta=meta)
            text = r.content[0].text if r.content else ""
            out["calls"].append([bool(r.is_error), text])
    print(json.dumps(out))


asyncio.run(main())
