# Official MCP Python SDK (PyPI `mcp` 2.x) server for the tunnel tests.
import sys
from mcp.server.mcpserver import MCPServer
app = MCPServer("adder")
@app.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
