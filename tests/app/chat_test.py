#!/usr/bin/python3
"""The chat example end to end: 200 python3-websockets clients in 5 rooms against duplex-chat.

Run with Debian's Python, which has python3-websockets:

    /usr/bin/python3 chat_test.py --chat build/examples/duplex-chat

duplex-chat runs with --compression on 2 worker threads; the clients mix permessage-deflate settings
(python's default offer, a server window of 10 bits, no server context takeover, no compression), so one
room's messages go out as shared frames deflated for several windows and as plain frames, between each
member's own welcome message. Every client sends 5 messages once everyone is in; every client must get
every message of its room exactly once (its own included), each sender's in order, with the text
verbatim, and nothing from another room. Also: the page at /, a rejected join (no name: 1008), join and
leave notices, and "/who" answered privately after the shared frames (each connection's own compressor
must have reset its context for the peer to decode it). The last line is "N passed, M failed"; exit status 1 when anything failed.
"""

import argparse
import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
import processes  # noqa: E402
from checks import check, summary  # noqa: E402

ROOMS = 5
PER_ROOM = 40
MESSAGES_EACH = 5
TIMEOUT = 60.0
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class ChatServer:
    """duplex-chat as a child process: started, its banner parsed, its output drained, stopped by PID."""

    def __init__(self, path):
        self.process = subprocess.Popen([path, "--urls", "http://127.0.0.1:0", "--threads", "2", "--compression"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = []
        self.lines = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            match = BANNER.search(line)
            if match:
                return int(match.group(1))
        raise RuntimeError("duplex-chat did not print its listening line: " + " | ".join(self.output[-10:]))

    def stop(self):
        processes.stop(self.process)


def compression_for(index):
    """The permessage-deflate offer of client `index` (connect() arguments): four kinds, in every room."""
    kind = index % 4
    if kind == 0:
        return {"compression": "deflate"}  # python's default offer: server window 15, context takeover
    if kind == 1:
        return {"compression": None, "extensions": [
            ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)]}
    if kind == 2:
        return {"compression": None, "extensions": [
            ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_max_window_bits=True)]}
    return {"compression": None}


def text_of(room, client, k):
    # Verbatim means verbatim: quotes, backslashes, non-ASCII and a control character travel in the JSON.
    return f'room {room} client {client} message {k}: "quoted" \\ back-slashed, café ☕ 𝄞\ttab'


async def chat_run(port):
    url = f"ws://127.0.0.1:{port}/chat"
    clients = []  # (room, index, websocket)
    welcomes = {}

    async def join(room, client):
        ws = await websockets.connect(f"{url}?room=room{room}&name=c{client}", max_queue=None,
                                      **compression_for(client))
        welcome = json.loads(await ws.recv())
        welcomes[client] = welcome
        clients.append((room, client, ws))

    await asyncio.wait_for(asyncio.gather(*(join(r, r * PER_ROOM + i) for r in range(ROOMS) for i in range(PER_ROOM))),
                           TIMEOUT)
    check("200 clients joined 5 rooms, each welcomed with its room",
                  all(welcomes[c]["type"] == "welcome" and welcomes[c]["room"] == f"room{c // PER_ROOM}"
                      and f"c{c}" in welcomes[c]["members"] for c in welcomes), str(list(welcomes.items())[:2]))
    # One more member of room 0, once everyone is in: its welcome names the whole room. It only listens.
    late = await websockets.connect(f"{url}?room=room0&name=late", max_queue=None)
    welcome = json.loads(await asyncio.wait_for(late.recv(), TIMEOUT))
    check("a member who joins later finds the whole room in its welcome",
                  sorted(welcome["members"]) == sorted([f"c{c}" for c in range(PER_ROOM)] + ["late"]), str(welcome))

    async def talk_and_listen(room, client, ws):
        # Everyone is in: every member's messages reach this one from now on.
        for k in range(MESSAGES_EACH):
            await ws.send(text_of(room, client, k))
        expected = PER_ROOM * MESSAGES_EACH
        got = {}  # sender -> list of k
        problems = []
        while sum(len(v) for v in got.values()) < expected:
            m = json.loads(await ws.recv())
            if m["type"] != "message":
                continue  # join notices of members who joined after this one
            sender = int(m["name"][1:])
            if sender // PER_ROOM != room:
                problems.append(f"a message from room {sender // PER_ROOM}: {m}")
                continue
            k = len(got.setdefault(sender, []))
            if m["text"] != text_of(room, sender, k):
                problems.append(f"from c{sender}, expected message {k} verbatim, got {m['text']!r}")
            got[sender].append(k)
        if len(got) != PER_ROOM:
            problems.append(f"messages from {len(got)} senders, expected {PER_ROOM}")
        return problems

    outcomes = await asyncio.wait_for(asyncio.gather(*(talk_and_listen(*c) for c in clients)), TIMEOUT)
    problems = [p for o in outcomes for p in o]
    check(f"every client got all {PER_ROOM * MESSAGES_EACH} messages of its room once, in each sender's order, "
                  "verbatim, its own included", not problems, "; ".join(problems[:3]))

    # Nothing else is on the way: a last message in each room reaches its members, and nothing of another
    # room comes before it.
    async def marker(room):
        members = [c for c in clients if c[0] == room]
        await members[0][2].send(f"end of room {room}")
        leaked = []
        for _, client, ws in members:
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "message":
                    if m["text"] != f"end of room {room}":
                        leaked.append(m)
                    break
        return leaked

    leaked = await asyncio.wait_for(asyncio.gather(*(marker(r) for r in range(ROOMS))), TIMEOUT)
    check("nothing reaches another room, nothing comes twice", not any(leaked), str(leaked)[:300])

    # "/who", answered to the asker alone, compressed by its own connection's compressor after the shared
    # frames (whose window the python inflater now holds): the room's members.
    async def who(room, client, ws):
        await ws.send("/who")
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "members":
                expected = [f"c{c}" for c in range(room * PER_ROOM, (room + 1) * PER_ROOM)] + (["late"] if room == 0 else [])
                return sorted(m["members"]) == sorted(expected)
            if m["type"] == "message":
                return False

    answers = await asyncio.wait_for(asyncio.gather(*(who(*c) for c in clients)), TIMEOUT)
    check("/who answers its asker alone with the room's members", all(answers),
                  f"{answers.count(False)} wrong answers")

    # Leaving: the others of the room hear of it.
    room0 = [c for c in clients if c[0] == 0]
    leaver = room0[-1]
    await leaver[2].close()
    m = json.loads(await asyncio.wait_for(room0[0][2].recv(), TIMEOUT))
    check("a member's leave is announced to its room", m == {"type": "leave", "name": f"c{leaver[1]}"}, str(m))
    await asyncio.gather(late.close(), *(ws.close() for _, _, ws in clients))


async def rejected_join(port):
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat?room=lobby") as ws:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        check("a join without a name is closed with 1008", False, "no close")
    except websockets.exceptions.ConnectionClosed as closed:
        check("a join without a name is closed with 1008", closed.code == 1008, f"closed with {closed.code}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat", required=True, help="path to duplex-chat")
    args = parser.parse_args()
    server = ChatServer(args.chat)
    try:
        port = server.port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            body = response.read().decode()
            check("GET / is the chat page", response.status == 200 and "new WebSocket(" in body
                          and response.headers["Content-Type"].startswith("text/html"), body[:80])
        asyncio.run(chat_run(port))
        asyncio.run(rejected_join(port))
    except Exception as error:  # noqa: BLE001 - any failure is reported as one
        check("the chat run", False, f"{type(error).__name__}: {error}")
    finally:
        # Also after a failure: a client's reset or refused connection is most often the server's end.
        check("duplex-chat still running", server.process.poll() is None,
              f"exit status {server.process.returncode} (a negative status is the signal that ended it)")
        server.stop()
        if not all(checks.results):
            print("--- duplex-chat output (last 20 lines) ---\n" + "\n".join(server.output[-20:]))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
