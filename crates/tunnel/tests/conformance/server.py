# Conformance fixture server on the official MCP Python SDK (PyPI `mcp` 2.x).
#
# Implements the tools, resources, prompts and utilities that the server
# scenarios of the official conformance suite (npm @modelcontextprotocol/conformance)
# call, as described by each scenario, so the suite can be run against it
# directly and through the airlock tunnel and the two results compared.
#
# Usage: python3 server.py PORT
import asyncio
import base64
import itertools
import json
import struct
import sys
import zlib
from typing import Annotated

from pydantic import Field

from mcp import types
from mcp.shared.exceptions import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.streamable_http import EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings


def png_1x1_red() -> str:
    """A valid 1x1 red PNG, built here so no binary blob lives in the tree."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def wav_silence() -> str:
    """A valid 10 ms mono 8 kHz 8-bit WAV of silence."""
    samples = b"\x80" * 80
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    return base64.b64encode(b"RIFF" + struct.pack("<I", len(body)) + body).decode()


PNG = png_1x1_red()
WAV = wav_silence()


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client that reconnects with Last-Event-ID gets the rest."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._events: list[tuple[str, str, types.JSONRPCMessage | None]] = []

    async def store_event(self, stream_id, message):
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        stream = next((s for e, s, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        after = False
        for event_id, stream_id, message in list(self._events):
            if event_id == last_event_id:
                after = True
            elif after and stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


app = MCPServer("airlock-conformance-fixture", version="1.0.0")


@app.tool(description="Returns a simple text response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@app.tool(description="Returns an image")
def test_image_content() -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(type="image", data=PNG, mime_type="image/png")])


@app.tool(description="Returns audio")
def test_audio_content() -> types.CallToolResult:
    return types.CallToolResult(content=[types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")])


@app.tool(description="Returns an embedded resource")
def test_embedded_resource() -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])


@app.tool(description="Returns text, an image and an embedded resource")
def test_multiple_content_types() -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text=json.dumps({"test": "data", "value": 123}),
    )
    return types.CallToolResult(
        content=[
            types.TextContent(type="text", text="Multiple content types test:"),
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=resource),
        ]
    )


@app.tool(description="Sends three info log messages while it runs")
async def test_tool_with_logging(ctx: Context) -> str:
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@app.tool(description="Always fails")
def test_error_handling() -> types.CallToolResult:
    text = "This tool intentionally returns an error for testing"
    return types.CallToolResult(is_error=True, content=[types.TextContent(type="text", text=text)])


@app.tool(description="Reports progress 0, 50 and 100 of 100")
async def test_tool_with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100)
        if step < 100:
            await asyncio.sleep(0.05)
    return "Tool with progress executed successfully"


@app.tool(description="Asks the client's LLM to answer a prompt")
async def test_sampling(prompt: str, ctx: Context) -> str:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
    result = await ctx.session.create_message(
        [message], max_tokens=100, related_request_id=ctx.request_id
    )
    content = result.content
    text = content.text if isinstance(content, types.TextContent) else str(content)
    return f"LLM response: {text}"


async def elicit(ctx: Context, message: str, schema: dict) -> types.ElicitResult:
    return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)


@app.tool(description="Asks the user for a username and an email address")
async def test_elicitation(message: str, ctx: Context) -> str:
    result = await elicit(
        ctx,
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return f"User response: action={result.action}, content={json.dumps(result.content)}"


@app.tool(description="Elicits a form whose fields all carry defaults (SEP-1034)")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    result = await elicit(
        ctx,
        "Please review and update the form fields with defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"


@app.tool(description="Elicits every enum form of SEP-1330")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    result = await elicit(
        ctx,
        "Please choose from each kind of list",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"


@app.tool(description="Closes its SSE stream mid-call so the client has to resume it (SEP-1699)")
async def test_reconnection(ctx: Context) -> str:
    await asyncio.sleep(0.05)
    await ctx.close_sse_stream()
    await asyncio.sleep(0.2)
    return "Reconnection test completed"


# Multi-round-trip requests (SEP-2322, protocol 2026-07-28): a tool answers
# with an InputRequiredResult; the client runs the requests and calls again
# with inputResponses (and the requestState, which the SDK seals and checks).


def ask_name(message: str = "What is your name?", key: str = "name") -> dict:
    return {
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]},
        },
    }


def ask_llm(text: str, max_tokens: int = 100) -> dict:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


LIST_ROOTS = {"method": "roots/list", "params": {}}


def input_required(requests: dict, state: str | None = None) -> types.InputRequiredResult:
    return types.InputRequiredResult.model_validate(
        {"resultType": "input_required", "inputRequests": requests, **({"requestState": state} if state else {})}
    )


def answers(ctx: Context) -> dict:
    """The client's inputResponses as plain JSON (empty on the first round)."""
    responses = ctx.input_responses or {}
    return {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in responses.items()}


def text(value: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=value)])


@app.tool(description="Asks for the user's name with an InputRequiredResult")
async def test_input_required_result_elicitation(ctx: Context):
    got = answers(ctx)
    reply = got.get("user_name")
    if not reply or reply.get("action") != "accept" or "name" not in (reply.get("content") or {}):
        return input_required({"user_name": ask_name()})
    return text(f"Hello, {reply['content']['name']}!")


@app.tool(description="Asks the client's LLM a question with an InputRequiredResult")
async def test_input_required_result_sampling(ctx: Context):
    reply = answers(ctx).get("capital_question")
    if not reply:
        return input_required({"capital_question": ask_llm("What is the capital of France?")})
    content = reply.get("content") or {}
    return text(f"LLM answered: {content.get('text', content)}")


@app.tool(description="Asks for the client's roots with an InputRequiredResult")
async def test_input_required_result_list_roots(ctx: Context):
    reply = answers(ctx).get("client_roots")
    if not reply or "roots" not in reply:
        return input_required({"client_roots": LIST_ROOTS})
    return text("Roots: " + ", ".join(r.get("uri", "") for r in reply["roots"]))


@app.tool(description="Round-trips requestState")
async def test_input_required_result_request_state(ctx: Context):
    reply = answers(ctx).get("confirm")
    if not reply or ctx.request_state != "awaiting-confirm":
        request = {
            "method": "elicitation/create",
            "params": {
                "message": "Please confirm",
                "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
            },
        }
        return input_required({"confirm": request}, "awaiting-confirm")
    return text(f"state-ok: confirmed={json.dumps((reply.get('content') or {}).get('ok'))}")


@app.tool(description="Asks for several inputs at once")
async def test_input_required_result_multiple_inputs(ctx: Context):
    got = answers(ctx)
    wanted = {
        "user_name": ask_name(),
        "greeting": ask_llm("Generate a greeting", 50),
        "client_roots": LIST_ROOTS,
    }
    if ctx.request_state != "multiple" or not all(k in got for k in wanted):
        return input_required(wanted, "multiple")
    return text(f"Got all {len(wanted)} inputs")


@app.tool(description="Asks in two rounds, evolving requestState")
async def test_input_required_result_multi_round(ctx: Context):
    got, state = answers(ctx), ctx.request_state
    if state == "round-2" and "step2" in got:
        return text("Completed both rounds")
    if state == "round-1" and "step1" in got:
        request = ask_name("Step 2: What is your favorite color?", "color")
        return input_required({"step2": request}, "round-2")
    return input_required({"step1": ask_name("Step 1: What is your name?")}, "round-1")


@app.tool(description="Issues integrity-protected requestState (the SDK seals it and rejects a tampered one)")
async def test_input_required_result_tampered_state(ctx: Context):
    if ctx.request_state == "issued" and "user_name" in answers(ctx):
        return text("state verified")
    return input_required({"user_name": ask_name()}, "issued")


@app.tool(description="Asks only for what the client's declared capabilities allow")
async def test_input_required_result_capabilities(ctx: Context):
    caps = ctx.client_capabilities
    requests = {}
    if caps is not None and caps.sampling is not None:
        requests["question"] = ask_llm("What is the capital of France?")
    if caps is not None and caps.elicitation is not None:
        requests["user_name"] = ask_name()
    if caps is not None and caps.roots is not None:
        requests["client_roots"] = LIST_ROOTS
    if not requests or any(k in answers(ctx) for k in requests):
        return text("Nothing (more) to ask for")
    return input_required(requests)


# Diagnostic hooks of the stateless (2026-07-28) scenario.


@app.tool(description="Needs the client's sampling capability; refuses with -32021 when it was not declared")
async def test_missing_capability(ctx: Context) -> str:
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(
            code=-32021,
            message="this tool needs the client's sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "sampling capability declared"


def changed_prompt() -> str:
    return "This prompt appeared after a change"


def changed_tool() -> str:
    return "This tool appeared after a change"


@app.tool(description="Adds a prompt and announces the changed prompt list")
async def test_trigger_prompt_change(ctx: Context) -> str:
    app.add_prompt(Prompt.from_function(
            changed_prompt, name=f"changed_prompt_{next(changes)}", description="Added by test_trigger_prompt_change"
        ))
    await ctx.notify_prompts_changed()
    return "prompt list changed"


@app.tool(description="Adds a tool and announces the changed tool list")
async def test_trigger_tool_change(ctx: Context) -> str:
    app.add_tool(
        changed_tool, name=f"changed_tool_{next(changes)}", description="Added by test_trigger_tool_change"
    )
    await ctx.notify_tools_changed()
    return "tool list changed"


changes = itertools.count(1)


@app.tool(description="Takes a region the client also sends as the Mcp-Param-Region header (SEP-2243)")
def test_custom_headers(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    return f"region={region}"


def json_schema_tool(name: str = "", address: dict | None = None) -> str:
    return "ok"


# Listed with a hand-written draft 2020-12 schema the suite checks is passed on unchanged.
_schema_tool = Tool.from_function(
    json_schema_tool, name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features"
)
_schema_tool.parameters = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "$anchor": "address",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "allOf": [{"anyOf": [{"required": ["name"]}, {"required": ["address"]}]}],
    "if": {"required": ["address"]},
    "then": {"properties": {"name": {"minLength": 1}}},
    "else": {"properties": {"name": {"type": "string"}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
app._tool_manager._tools[_schema_tool.name] = _schema_tool


@app.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@app.resource("test://static-binary", name="static-binary", description="A static PNG", mime_type="image/png")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@app.resource(
    "test://watched-resource", name="watched-resource", description="A resource clients subscribe to",
    mime_type="text/plain",
)
def watched_resource() -> str:
    return "Watched resource content"


@app.resource(
    "test://template/{id}/data", name="template-data", description="Data for an id", mime_type="application/json"
)
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@app.prompt(description="A prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage(content=types.TextContent(type="text", text="This is a simple prompt for testing."))]


@app.prompt(description="A prompt with two arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
    return [UserMessage(content=types.TextContent(type="text", text=text))]


@app.prompt(description="A prompt embedding the resource it is given")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    resource = types.TextResourceContents(
        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
    )
    return [
        UserMessage(content=types.EmbeddedResource(type="resource", resource=resource)),
        UserMessage(content=types.TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@app.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(content=types.ImageContent(type="image", data=PNG, mime_type="image/png")),
        UserMessage(content=types.TextContent(type="text", text="Please analyze the image above.")),
    ]


@app.prompt(description="A prompt that first asks the user for context (SEP-2322)")
async def test_input_required_result_prompt(ctx: Context):
    reply = answers(ctx).get("user_context")
    if not reply or "context" not in (reply.get("content") or {}):
        return input_required({"user_context": ask_name("What context should the prompt use?", "context")})
    return [UserMessage(content=types.TextContent(type="text", text=f"Context: {reply['content']['context']}"))]


@app.completion()
async def complete(ref, argument, context):
    words = ["paris", "park", "party", "test", "testing"]
    values = [w for w in words if w.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), has_more=False)


subscriptions: set[str] = set()


async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscriptions.add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    subscriptions.discard(str(params.uri))
    return types.EmptyResult()


async def set_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    return types.EmptyResult()


app._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
app._lowlevel_server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
app._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)

if __name__ == "__main__":
    port = int(sys.argv[1])
    app.run(
        "streamable-http",
        host="127.0.0.1",
        port=port,
        event_store=MemoryEventStore(),
        retry_interval=500,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"127.0.0.1:{port}", f"localhost:{port}"],
            allowed_origins=[f"http://127.0.0.1:{port}", f"http://localhost:{port}"],
        ),
    )
