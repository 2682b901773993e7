#!/usr/bin/python3
"""The examples driven end to end by a real client (Debian's python3-websockets).

    /usr/bin/python3 tests/app/examples_test.py --echo E --background-processor B --routes R
"""
import argparse
import asyncio
import os
import re
import sys
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import processes  # noqa: E402


async def start(path, *arguments):
    process = await asyncio.create_subprocess_exec(path, "--urls", "http://127.0.0.1:0", *arguments,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"{path} did not start: {line!r}")
    return process, int(match.group(1))


async def stop(process):
    assert process.returncode is None, "the example died during the test"
    assert await processes.stop_async(process, grace=10) == 0, "the example did not shut down cleanly on SIGTERM"


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


def threads_of(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"^Threads:\s+(\d+)", status.read(), re.M).group(1))


async def echo_sample_options(path):
    """--threads sets the event loop's threads; --buffer-size and --receive-buffer-size only change how
    large messages are cut into pieces, never what comes back; bad values stop the start with a message."""
    for arguments, threads in [(["--threads", "1", "--buffer-size", "1048576", "--receive-buffer-size", "65536"], 1),
                               (["--threads=3", "--buffer-size", "100", "--receive-buffer-size", "300"], 3)]:
        process, port = await start(path, *arguments)
        try:
            for _ in range(50):  # the workers start after the "listening" line
                if threads_of(process.pid) == threads:
                    break
                await asyncio.sleep(0.1)
            assert threads_of(process.pid) == threads, (arguments, threads_of(process.pid))
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
                for size in [0, 1, 99, 100, 101, 4096, 65536, 65537, 1 << 20, 3 << 20]:
                    text = "".join(chr(0x41 + (i * 7) % 26) if i % 5 else "é" for i in range(size // 2 + 1))[:size]
                    binary = bytes((i * 31 + size) % 256 for i in range(size))
                    await ws.send(text)
                    assert await ws.recv() == text, (arguments, "text", size)
                    await ws.send(binary)
                    assert await ws.recv() == binary, (arguments, "binary", size)
        finally:
            await stop(process)
    for _ in range(3):  # SIGTERM right on the "listening" line is a graceful shutdown too
        process, _ = await start(path, "--threads", "2")
        await stop(process)
    for arguments, message in [(["--threads", "0"], "--threads needs a number of threads from 1 to 1024"),
                               (["--threads", "two"], "--threads needs a number of threads from 1 to 1024"),
                               (["--buffer-size", "0"], "--buffer-size needs a number of bytes"),
                               (["--receive-buffer-size", "12k"], "--receive-buffer-size needs a number of bytes"),
                               (["--compresion"], "unknown argument '--compresion'"),
                               (["extra"], "unknown argument 'extra'"),
                               (["--api"], "--api needs a value"),
                               (["--cert"], "--cert needs a value")]:
        done = await asyncio.create_subprocess_exec(path, "--urls", "http://127.0.0.1:0", *arguments,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await asyncio.wait_for(done.communicate(), 10))[0].decode()
        assert done.returncode == 2 and message in output and "listening" not in output, (arguments, done.returncode, output)
    # --help says how to use it and starts nothing.
    done = await asyncio.create_subprocess_exec(path, "--urls", "http://127.0.0.1:0", "--help",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(done.communicate(), 10))[0].decode()
    assert done.returncode == 0 and output.startswith("usage: duplex-echo") and "listening" not in output, output


async def expect_every_step_then_close(ws, steps):
    """The background processor's messages, each step in order, then its normal close."""
    messages = [await asyncio.wait_for(ws.recv(), 5) for _ in range(steps)]
    assert messages == [f"processing step {i} of {steps}" for i in range(1, steps + 1)], messages
    try:
        await asyncio.wait_for(ws.recv(), 5)
        raise AssertionError("expected the processor to close the socket")
    except websockets.exceptions.ConnectionClosedOK:
        pass


async def background_processor(path):
    process, port = await start(path)
    try:
        async def one_client():
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await expect_every_step_then_close(ws, 5)
                assert (ws.close_code, ws.close_reason) == (1000, "processing complete")
        await asyncio.gather(*(one_client() for _ in range(5)))
    finally:
        await stop(process)


async def background_processor_keep_alive(path):
    """The service only sends. With keep-alive pings (100 ms) and a timeout (300 ms), a client that answers
    them (python websockets does, while it reads) gets every step; one that reads but never answers pings
    is aborted: no close frame, and the service's send reports keep_alive_timeout."""
    process, port = await start(path, "--steps", "15", "--step-ms", "100", "--keep-alive-interval-ms", "100",
                                "--keep-alive-timeout-ms", "300")
    output = []

    async def collect():
        while line := await process.stdout.readline():
            output.append(line.decode())
    collector = asyncio.create_task(collect())
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await expect_every_step_then_close(ws, 15)
        # A raw client: the upgrade, then it reads what comes and never answers a ping.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        received = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 5):
                received += chunk
        except ConnectionResetError:
            pass
        writer.close()
        pings = received.count(b"\x89\x00")
        assert pings >= 1, "the server sent no ping"
        assert b"processing complete" not in received, "the processor finished: the silent peer was not detected"
        assert b"of 15" in received and b"processing step 15 of 15" not in received, received[-200:]
        for _ in range(50):
            if any("keep-alive timeout" in line for line in output):
                break
            await asyncio.sleep(0.1)
        assert any("background processor: a socket ended: " in line and "keep-alive timeout" in line
                   for line in output), output
    finally:
        collector.cancel()
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
                              ("echo sample app: --threads, --buffer-size and --receive-buffer-size", echo_sample_options,
                               args.echo),
                              ("background processor owns sockets until its tcs completes", background_processor,
                               args.background_processor),
                              ("background processor: keep-alive without a pending receive finds a silent peer",
                               background_processor_keep_alive, args.background_processor),
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
