# SSE polling and resumption (SEP-1699) at protocol 2025-11-25, on the wire:
# the fixture's test_reconnection tool closes its POST stream after the priming
# event, and the result must arrive on a GET that resumes with Last-Event-ID.
# (The conformance suite's server-sse-polling scenario announces 2025-03-26,
# for which the SDK never closes the stream, so it does not exercise this.)
#
# Usage: python3 resume.py URL [AGENT_KEY]; prints one JSON line.
import json
import sys

import httpx2 as httpx

VERSION = "2025-11-25"


def sse_events(response):
    """(id, retry, data) of each SSE event until the stream ends."""
    event = {}
    for line in response.iter_lines():
        if line == "":
            if event:
                yield event.get("id"), event.get("retry"), event.get("data")
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[field] = event.get(field, "") + value if field == "data" else value
    if event:
        yield event.get("id"), event.get("retry"), event.get("data")


def main(url, key):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    with httpx.Client(headers=headers, timeout=10) as c:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "resume", "version": "1"}},
        }
        r = c.post(url, json=init)
        r.raise_for_status()
        session = r.headers["mcp-session-id"]
        h = {"mcp-session-id": session, "mcp-protocol-version": VERSION}
        c.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h).raise_for_status()

        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "test_reconnection", "arguments": {}}}
        first, last_id, retry, result = [], None, None, None
        with c.stream("POST", url, json=call, headers=h) as s:
            s.raise_for_status()
            for eid, eretry, data in sse_events(s):
                first.append({"id": eid is not None, "retry": eretry, "data": bool(data)})
                last_id = eid or last_id
                retry = eretry or retry
                if data and json.loads(data).get("id") == 1:
                    result = "on the POST stream"
        resumed = None
        if last_id is not None and result is None:
            with c.stream("GET", url, headers={**h, "Last-Event-ID": last_id}) as s:
                s.raise_for_status()
                for _, _, data in sse_events(s):
                    if data and json.loads(data).get("id") == 1:
                        resumed = json.loads(data)["result"]["content"][0]["text"]
                        break
        c.delete(url, headers=h)
    print(json.dumps({"post_events": first, "retry": retry, "result": result, "resumed": resumed}))


main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
