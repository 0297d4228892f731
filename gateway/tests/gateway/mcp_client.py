"""Drive verdict-gateway with the Python MCP SDK (PyPI `mcp`), a client this project did not write.

Usage: python mcp_client.py URL ROOT
Lists the tools, makes an allowed and a denied `write_file` call under ROOT and an unknown-tool
call, and prints one JSON object per line: {"step", "is_error", "text", "meta"} or {"step", "error"}.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def dump(step, result):
    text = " ".join(getattr(c, "text", "") for c in result.content)
    is_error = getattr(result, "is_error", None)
    if is_error is None:
        is_error = getattr(result, "isError", False)
    meta = getattr(result, "meta", None)
    print(json.dumps({"step": step, "is_error": bool(is_error), "text": text, "meta": meta}, default=str), flush=True)


async def main(url, root):
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            print(json.dumps({"step": "tools", "names": sorted(t.name for t in tools.tools)}), flush=True)
            dump("allow", await session.call_tool(
                "write_file", {"path": f"{root}/internal/py-allowed.txt", "content": "from python"}))
            dump("deny", await session.call_tool(
                "write_file", {"path": f"{root}/outbox/py-denied.txt", "content": "from python"}))
            try:
                r = await session.call_tool("no_such_tool", {})
                dump("unknown", r)
            except Exception as e:  # the SDK raises on a JSON-RPC error
                print(json.dumps({"step": "unknown", "error": str(e)}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
