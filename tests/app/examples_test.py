#!/usr/bin/python3
"""The examples driven end to end by a real client (Debian's python3-websockets).

    /usr/bin/python3 tests/app/examples_test.py --echo E --background-processor B --routes R
"""
import argparse
import asyncio
import re
import subprocess
import sys
import urllib.request

import websockets


async def start(path):
    process = await asyncio.create_subprocess_exec(path, "--urls", "http://127.0.0.1:0",
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"{path} did not start: {line!r}")
    return process, int(match.group(1))


async def stop(process):
    assert process.returncode is None, "the example died during the test"
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 10) == 0, "the example did not shut down cleanly on SIGTERM"


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


async def echo_sample(path):
    process, port = await start(path)
    try:
        status, content_type, page = get(port, "/")
        assert status == 200 and content_type.startswith("text/html"), (status, content_type)
        for needle in ["WebSocket Sample Application", "connectionUrl", "Connect", "Close Socket", "Communication Log"]:
            assert needle in page, f"the sample page lacks {needle!r}"
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("hello sample")
            assert await ws.recv() == "hello sample"
    finally:
        await stop(process)


async def background_processor(path):
    process, port = await start(path)
    try:
        async def one_client():
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                messages = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
                assert messages == [f"processing step {i} of 5" for i in range(1, 6)], messages
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                    raise AssertionError("expected the processor to close the socket")
                except websockets.exceptions.ConnectionClosedOK:
                    pass
                assert (ws.close_code, ws.close_reason) == (1000, "processing complete")
        await asyncio.gather(*(one_client() for _ in range(5)))
    finally:
        await stop(process)


async def routes(path):
    process, port = await start(path)
    try:
        status, _, body = get(port, "/api/time")
        assert status == 200 and body.strip().isdigit(), body
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/uppercase") as ws:
            await ws.send("make me loud")
            assert await ws.recv() == "MAKE ME LOUD"
        try:
            get(port, "/elsewhere")
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        await stop(process)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    parser.add_argument("--background-processor", required=True)
    parser.add_argument("--routes", required=True)
    args = parser.parse_args()
    passed = failed = 0
    for name, check, path in [("echo sample app serves its page and echoes", echo_sample, args.echo),
                              ("background processor owns sockets until its tcs completes", background_processor,
                               args.background_processor),
                              ("routes map plain HTTP and WebSocket endpoints", routes, args.routes)]:
        try:
            asyncio.run(asyncio.wait_for(check(path), 60))
            print(f"PASS {name}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
