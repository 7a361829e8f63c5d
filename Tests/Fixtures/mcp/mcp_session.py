#!/usr/bin/env python3
"""One MCP session with `ukb mcp` over stdio, driven by the `mcp` package from PyPI (a real
client: the handshake, tools/list, tools/call).

    mcp_session.py --ukb PATH --team TEAM --steps STEPS.json

STEPS.json is a list of calls: {"tool": NAME, "arguments": {...}}; a call may also carry
"until": TEXT and "timeout": SECONDS, and is then repeated (every 0.25 s) until its result's
text contains TEXT or the time is up. The server inherits this process's environment (KB_*
addresses). Prints one JSON object: the server's name, the tools listed (as the protocol sends
them), and each call's result (as the protocol sends it) with its attempts and seconds.
Exits 2 when the `mcp` package is missing.
"""
import argparse
import asyncio
import json
import os
import sys
import time

try:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
except ImportError as error:  # the test turns this into a failure that says what to install
    print(f"the mcp package is missing ({error}): pip install mcp, or scripts/setup-system.sh --test", file=sys.stderr)
    sys.exit(2)


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def text_of(result):
    return "\n".join(part.get("text", "") for part in result.get("content", []))


async def session(args, steps):
    server = StdioServerParameters(command=args.ukb, args=["mcp", "--team", args.team], env=dict(os.environ))
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as client:
            info = await client.initialize()
            tools = await client.list_tools()
            calls = []
            for step in steps:
                start = time.monotonic()
                deadline = start + float(step.get("timeout", 0))
                attempts = 0
                while True:
                    attempts += 1
                    result = dump(await client.call_tool(step["tool"], step.get("arguments")))
                    if "until" not in step or step["until"] in text_of(result) or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.25)
                calls.append({"tool": step["tool"], "result": result, "text": text_of(result),
                              "attempts": attempts, "seconds": round(time.monotonic() - start, 3)})
            await client.send_ping()  # still serving after every call, the bad ones included
            return {"server": dump(info)["serverInfo"]["name"], "tools": [dump(tool) for tool in tools.tools], "calls": calls}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ukb", required=True)
    parser.add_argument("--team", required=True)
    parser.add_argument("--steps", required=True)
    args = parser.parse_args()
    with open(args.steps) as file:
        steps = json.load(file)
    print(json.dumps(asyncio.run(session(args, steps))))


if __name__ == "__main__":
    main()
