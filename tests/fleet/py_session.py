"""One whole MCP session through a load balancer with the official Python SDK (PyPI `mcp`
1.x, `.deps/py1`), for tests/fleet_sessions.rs: the same steps as ts_session.mjs
(initialize, resources/subscribe, ROUNDS x (tools/list, echo, progress), DELETE on exit),
with the same halfway handshake and the same JSON report on stdout.

    .deps/py1/bin/python tests/fleet/py_session.py URL KEY DIR NAME ROUNDS
"""

import json
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def main() -> None:
    url, key, directory, name, rounds = sys.argv[1:6]
    rounds = int(rounds)
    out = {"sessionId": None, "protocolVersion": None, "rounds": 0, "progress": [],
           "subscribed": None, "errors": [], "closed": False}
    try:
        async with streamablehttp_client(url, headers={"Authorization": f"Bearer {key}"}) as (read, write, session_id):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(20):
                    init = await session.initialize()
                out["protocolVersion"] = init.protocolVersion
                out["sessionId"] = session_id()
                try:
                    resources = await session.list_resources()
                    if resources.resources:
                        uri = resources.resources[0].uri
                        await session.subscribe_resource(uri)
                        out["subscribed"] = str(uri)
                except Exception as error:  # noqa: BLE001 - reported, not fatal
                    out["errors"].append(f"subscribe: {error}")
                for round_number in range(1, rounds + 1):
                    try:
                        with anyio.fail_after(20):
                            tools = await session.list_tools()
                            if not any(t.name == "fx__echo" for t in tools.tools):
                                raise RuntimeError("fx__echo not listed")
                            echo = await session.call_tool("fx__echo", {"text": f"round {round_number}"})
                            if f"round {round_number}" not in echo.model_dump_json():
                                raise RuntimeError(f"echo answered {echo.model_dump_json()}")
                            updates = []

                            async def progress(p, total, message):
                                updates.append(p)

                            await session.call_tool("fx__progress", {"steps": 3}, progress_callback=progress)
                            out["progress"].append(len(updates))
                            out["rounds"] += 1
                    except Exception as error:  # noqa: BLE001 - reported, not fatal
                        out["errors"].append(f"round {round_number}: {error!r}")
                    if round_number == rounds // 2:
                        open(os.path.join(directory, f"{name}.halfway"), "w").close()
                        for _ in range(600):
                            if os.path.exists(os.path.join(directory, f"{name}.go")):
                                break
                            await anyio.sleep(0.05)
        out["closed"] = True
    except Exception as error:  # noqa: BLE001 - reported
        out["errors"].append(f"session: {error!r}")
    print(json.dumps(out), flush=True)


anyio.run(main)
