#!/usr/bin/env python3
"""PyPI `mcp` 2.x client in 2026-07-28 mode: opens `subscriptions/listen` (Client.listen)
at URL with tools list changes and one resource, waits for the acknowledgement, closes,
and prints one JSON line: the honored filter, or the error.

    .deps/py2/bin/python tests/clients/py2_listen_client.py URL RESOURCE_URI
"""

import asyncio
import json
import sys

from mcp.client.client import Client


async def main(url: str, uri: str) -> dict:
    async with Client(url, mode="2026-07-28") as client:
        async with client.listen(tools_list_changed=True, resource_subscriptions=[uri]) as sub:
            honored = sub.honored.model_dump(mode="json", by_alias=True, exclude_none=True)
        # A second listen after the first closed: the gateway is still serving.
        async with client.listen(prompts_list_changed=True) as sub:
            again = sub.honored.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"honored": honored, "again": again, "error": None}


if __name__ == "__main__":
    try:
        report = asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
    except Exception as error:  # the report says what failed
        report = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report))
