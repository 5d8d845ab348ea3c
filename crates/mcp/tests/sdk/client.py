# The official MCP Python SDK against airlock mcp. Prints one JSON line:
# protocol version, tools listed, and each call's [isError, text, progress,
# result_ms]: a call with "progress": true in the input asks for progress
# (the SDK sends a progressToken) and lists what arrived as
# [ms, progress, total, message], ms since the call was sent; result_ms is
# when the result came.
# usage: client.py http URL KEY MODE | client.py stdio MODE CMD [ARGS...]
import asyncio, json, sys, time

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
            seen = []
            sent = time.monotonic()

            async def on_progress(progress, total, message, seen=seen, sent=sent):
                seen.append([round((time.monotonic() - sent) * 1000), progress, total, message])

            cb = on_progress if call.get("progress") else None
            r = await c.call_tool(call["name"], call["args"], meta=meta, progress_callback=cb)
            done = round((time.monotonic() - sent) * 1000)
            text = r.content[0].text if r.content else ""
            out["calls"].append([bool(r.is_error), text, seen, done])
    # The SDK runs progress callbacks as tasks of their own, which may still
    # be pending when call_tool returns: let them run before reporting.
    await asyncio.sleep(0.1)
    print(json.dumps(out))


asyncio.run(main())
