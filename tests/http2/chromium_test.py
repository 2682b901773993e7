#!/usr/bin/python3
"""Chromium (Debian's chromium, headless) loads duplex-echo's sample page over https and drives it as a
user does — Connect, Send, Close Socket — through the DevTools protocol (python3-websockets as the CDP
client). The page's WebSocket must go over HTTP/2 (RFC 8441), which Chromium does only when the page's
own HTTP/2 connection to the same origin advertised SETTINGS_ENABLE_CONNECT_PROTOCOL; Chromium's net log
proves it (HTTP2_SESSION_SEND_HEADERS with ":protocol: websocket"), and the close must be 1000.

    /usr/bin/python3 chromium_test.py --echo build/examples/duplex-echo --make-certs examples/tls_echo/make-certs.sh \
        --certs DIR [--chromium /usr/bin/chromium]

Every wait is bounded; the last line is "N passed, M failed"; exit status 1 when anything failed or
Chromium is missing.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2peer  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402

import websockets  # noqa: E402


class DevTools:
    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0

    async def call(self, method, params=None, timeout=10):
        self.next_id += 1
        call_id = self.next_id
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression):
        result = await self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    async def wait_until(self, expression, what, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.evaluate(expression):
                return True
            await asyncio.sleep(0.1)
        raise TimeoutError("timed out waiting for " + what)


async def drive(port, debugging_port):
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{debugging_port}/json/list", timeout=5))
    page = next(t for t in targets if t["type"] == "page")
    async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
        tools = DevTools(socket)
        await tools.call("Page.enable")
        await tools.call("Page.navigate", {"url": f"https://localhost:{port}/"})
        await tools.wait_until("document.readyState === 'complete' && !!document.getElementById('connectButton')",
                               "the sample page")
        url = await tools.evaluate("connectionUrl.value")
        check("the sample page, loaded over https, prefills wss:// to its own origin",
              url == f"wss://localhost:{port}/ws", url)
        await tools.evaluate("connectButton.click()")
        await tools.wait_until("stateLabel.textContent === 'Open'", "the WebSocket to open")
        await tools.evaluate("sendMessage.value = 'hello over HTTP/2'; sendButton.click()")
        await tools.wait_until("[...document.querySelectorAll('#commsLog td.data')].length >= 2", "the echo")
        rows = await tools.evaluate("[...document.querySelectorAll('#commsLog td.data')].map(c => c.textContent)")
        check("the page's message comes back", rows == ["hello over HTTP/2", "hello over HTTP/2"], f"{rows}")
        await tools.evaluate("closeButton.click()")
        await tools.wait_until("commsLog.textContent.includes('Connection closed')", "the close")
        closed = await tools.evaluate("commsLog.textContent")
        check("the page's Close Socket ends with 1000", "Code: 1000" in closed, closed)
        await tools.call("Browser.close")


def h2_evidence(net_log_path):
    """From Chromium's net log: the server's SETTINGS_ENABLE_CONNECT_PROTOCOL, the page request and the
    WebSocket's extended CONNECT over HTTP/2, and the WebSocket's states."""
    text = open(net_log_path).read().rstrip()
    if not text.endswith("}"):  # a killed browser leaves the log unterminated
        text = text.rstrip(",") + "]}"
    log = json.loads(text)
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    evidence = {"settings": False, "page": False, "connect": False, "connected": False}
    for event in log["events"]:
        name, params = names.get(event["type"]), event.get("params", {})
        if name == "HTTP2_SESSION_RECV_SETTING" and params.get("id", "").startswith("8 ") and params.get("value") == 1:
            evidence["settings"] = True
        if name == "HTTP2_SESSION_SEND_HEADERS":
            headers = params.get("headers", [])
            if ":method: GET" in headers and ":path: /" in headers:
                evidence["page"] = True
            if ":method: CONNECT" in headers and ":protocol: websocket" in headers and ":path: /ws" in headers:
                evidence["connect"] = True
        if name == "WEBSOCKET_STATE_CHANGED" and params.get("new_state") == "CONNECTED":
            evidence["connected"] = True
    return evidence


def session(args, tls, label, extra):
    """One Chromium run against a fresh duplex-echo; returns the net log's evidence (None on failure)."""
    profile = tempfile.mkdtemp(prefix="duplex-h2-chromium-")
    net_log = os.path.join(profile, "net-log.json")
    server = browser = None
    try:
        server = h2peer.Server(args.echo, ["--urls", "https://127.0.0.1:0", *tls, *extra])
        port = server.port("https")
        browser = subprocess.Popen([args.chromium, "--headless=new", "--no-sandbox", "--ignore-certificate-errors",
                                    f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                    f"--log-net-log={net_log}", "--host-resolver-rules=MAP localhost 127.0.0.1",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(active) and open(active).read().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        debugging_port = int(open(active).read().split()[0])
        print(f"---- {label}")
        asyncio.run(asyncio.wait_for(drive(port, debugging_port), 60))
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        evidence = h2_evidence(net_log)
        server.check_clean_exit(what=f"logged no error (not even for Chromium's RST_STREAM(CANCEL)), {label}")
        return evidence
    except Exception as e:  # noqa: BLE001 - any escape is a failure
        check(f"{label}: the Chromium session", False, f"{type(e).__name__}: {e}")
        return None
    finally:
        if browser and browser.poll() is None:
            browser.kill()
        if server:
            server.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    parser.add_argument("--make-certs", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not os.access(args.chromium, os.X_OK):
        print(f"FAIL: Chromium is missing ({args.chromium}): apt-get install chromium")
        print("0 passed, 1 failed")
        sys.exit(1)
    _, tls = h2peer.make_certs(args.make_certs, args.certs)
    evidence = session(args, tls, "h2 and http/1.1 (the default)", [])
    if evidence is not None:
        check("Chromium got SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 and loaded the page over HTTP/2",
              evidence["settings"] and evidence["page"], f"{evidence}")
        check("the page's WebSocket went over HTTP/2: an extended CONNECT with :protocol websocket, CONNECTED",
              evidence["connect"] and evidence["connected"], f"{evidence}")
    # The control: with HTTP/1.1 alone the same page works, and the log shows no HTTP/2 at all, so the
    # evidence above is HTTP/2's and not something every run shows.
    evidence = session(args, tls, "--http-protocols http1 (the control)", ["--http-protocols", "http1"])
    if evidence is not None:
        check("control: over HTTP/1.1 the log shows neither HTTP/2 SETTINGS nor an extended CONNECT",
              evidence["connected"] and not evidence["settings"] and not evidence["connect"], f"{evidence}")
    sys.exit(summary())


if __name__ == "__main__":
    main()
