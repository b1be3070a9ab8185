"""A publishing process for the crash test, driven over stdin/stdout (not a test module).

Prints ``connected`` once the broker accepted the session. Each stdin line ``put N`` stores N events in the
outbox through ``Publisher.publish_event`` and answers ``depth D``. Runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from edge.outbox import Outbox
from edge.publisher import Publisher


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--keepalive", type=int, default=2)
    args = ap.parse_args()
    outbox = Outbox(args.state / "outbox.db")
    pub = Publisher(
        "crashy", host="127.0.0.1", port=args.port, outbox=outbox, keepalive=args.keepalive,
        reconnect_base=0.1, reconnect_cap=0.5,
    )  # fmt: skip
    await pub.start()
    loop = asyncio.get_running_loop()
    seq = 0

    async def announce() -> None:
        while not pub.connected:  # noqa: ASYNC110 - the flag is set by the publisher's network thread
            await asyncio.sleep(0.02)
        print("connected", flush=True)

    task = asyncio.create_task(announce())
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd, n = line.split()
        assert cmd == "put"
        for _ in range(int(n)):
            payload = json.dumps({"event_id": f"cam-{seq:06d}", "seq": seq, "camera": "cam"}).encode()
            pub.publish_event("cam", "line_crossing", payload)
            seq += 1
        print(f"depth {outbox.depth}", flush=True)
    task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
