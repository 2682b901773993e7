#!/usr/bin/python3
"""duplex-client and the client's proxies against real peers: duplex-echo (ws:// and wss://), a
python3-websockets server, a raw server that pings back and breaks the protocol on purpose, Debian's
tinyproxy (HTTP CONNECT, with and without Basic authentication) and microsocks (SOCKS5, with and without
RFC 1929 authentication). Then the proxy-api doctest program checks connect()'s errors and
use_environment_proxy through the same proxies.

    /usr/bin/python3 tests/client/client_test.py --client build/examples/duplex-client \
        --echo build/examples/duplex-echo --api build/tests/client/proxy-api \
        --make-certs examples/tls_echo/make-certs.sh --work DIR

Prints PASS/FAIL per check and "N passed, M failed" last; exits non-zero on any failure.
"""

import argparse
import asyncio
import base64
import hashlib
import http
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time

import websockets
import websockets.exceptions

from proxies import free_port, start_microsocks, start_tinyproxy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402

RUN_TIMEOUT = 60
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                   "NO_PROXY")

def clean_environment(**extra):
    """The process environment without proxy variables (the machine's own must not leak in), plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(extra)
    return env


async def run(command, stdin=b"", env=None, lines_before_end=0):
    """Runs a program to its end, bounded by RUN_TIMEOUT: (exit status, stdout bytes, stderr text). With
    lines_before_end, standard input stays open until that many lines came out: a server that answers a
    close at once may drop echoes it has not sent yet (python3-websockets does), so a check that wants
    the echoes ends the input only after them."""
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                   env=env or clean_environment())

    async def converse():
        try:
            process.stdin.write(stdin)
            await process.stdin.drain()
        except ConnectionError:
            pass  # it ended without reading its input (a usage error)
        first = b"".join([await process.stdout.readline() for _ in range(lines_before_end)])
        process.stdin.close()
        rest, err = await asyncio.gather(process.stdout.read(), process.stderr.read())
        await process.wait()
        return first + rest, err

    try:
        out, err = await asyncio.wait_for(converse(), RUN_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        out, err = await process.communicate()
        return None, out, err.decode(errors="replace") + f"\n(killed after {RUN_TIMEOUT} s)"
    return process.returncode, out, err.decode(errors="replace")


# ---- the python3-websockets server ----

async def python_handler(ws):
    path = ws.path
    try:
        if path == "/close-1011":
            await ws.close(1011, "overloaded")
            return
        if path == "/headers":
            await ws.send(ws.request_headers.get("X-Duplex-Test", "<missing>"))
        elif path == "/extensions":
            await ws.send(ws.request_headers.get("Sec-WebSocket-Extensions", "<none>") + " | " +
                          (ws.response_headers.get("Sec-WebSocket-Extensions") or "<declined>"))
        elif path == "/subprotocol":
            await ws.send(ws.subprotocol or "<none>")
        async for message in ws:
            await ws.send(message)
    except websockets.exceptions.ConnectionClosed:
        pass


async def python_process_request(path, request_headers):
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [], b"no"
    return None


# ---- a raw server: answers pings with a text message, or breaks the protocol ----

async def raw_handler(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        if path == "/protocol-error":
            writer.write(b"\xc1\x02hi")  # RSV1 without a negotiated extension: the client must fail (1002)
            await writer.drain()
            await reader.read(1024)  # the client's close frame, then its end
            return
        while True:  # /ping: every ping from the client is answered with the text "got ping"
            first = await reader.readexactly(2)
            length = first[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            await reader.readexactly(4 + length)  # mask and payload
            opcode = first[0] & 0x0F
            if opcode == 0x9:
                writer.write(b"\x81\x08got ping")
            elif opcode == 0x8:
                writer.write(b"\x88\x02\x03\xe8")
                await writer.drain()
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


# ---- duplex-echo over http:// and https:// ----

async def start_echo(path, certs):
    process = await asyncio.create_subprocess_exec(
        path, "--urls", "http://127.0.0.1:0;https://127.0.0.1:0", "--cert", os.path.join(certs, "server.pem"),
        "--key", os.path.join(certs, "server.key"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    ports = {}
    while len(ports) < 2:
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        match = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)", line)
        if match:
            ports[match.group(1)] = int(match.group(2))
        elif not line or ": error: " in line:
            process.kill()
            raise RuntimeError(f"duplex-echo did not start: {line!r}")
    return process, ports["http"], ports["https"]


async def start_localhost_echo(path):
    """duplex-echo on every address of "localhost" (127.0.0.1, and ::1 where it has it) with one port, so
    that a name resolved by the proxy or by us reaches it whichever address comes first."""
    port = free_port()
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", port, 0, socket.SOCK_STREAM, 0,
                                                              socket.AI_PASSIVE)}
    process = await asyncio.create_subprocess_exec(path, "--urls", f"http://localhost:{port}",
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    listening = 0
    for _ in addresses:  # a line per address: listening on it, or why not
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        listening += "listening on" in line
    if not listening:
        process.kill()
        raise RuntimeError(f"duplex-echo does not listen on localhost:{port}")
    return process, port


# ---- the checks ----

async def acceptance(client, echo_ws, proxies):
    status, out, err = await run([client, echo_ws], b"hello\nworld\n")
    check("printf 'hello\\nworld\\n' | duplex-client ws://…/ws prints hello and world and exits 0",
          status == 0 and out == b"hello\nworld\n", f"status {status}, out {out!r}, err {err}")
    for proxy in proxies:
        before = proxy.log().count(str(echo_port(echo_ws)))
        status, out, err = await run([client, echo_ws, "--proxy", proxy.url()], b"hello\nworld\n")
        through = proxy.log().count(str(echo_port(echo_ws))) > before
        check(f"the same through {proxy.url()} (the proxy's log shows the connection)",
              status == 0 and out == b"hello\nworld\n" and through,
              f"status {status}, out {out!r}, err {err}, in the proxy's log: {through}")


def echo_port(url):
    return int(re.search(r":(\d+)/", url).group(1))


async def secure_through_proxies(client, echo_wss, ca, proxies):
    status, out, err = await run([client, echo_wss, "--ca", ca], b"secure\n")
    check("wss:// to duplex-echo with --ca", status == 0 and out == b"secure\n", f"status {status}, err {err}")
    for proxy in proxies:
        status, out, err = await run([client, echo_wss, "--ca", ca, "--proxy", proxy.url()], b"tunnelled\n")
        check(f"wss:// through {proxy.url()}: TLS to the server inside the tunnel",
              status == 0 and out == b"tunnelled\n", f"status {status}, err {err}")
    status, out, err = await run([client, echo_wss], b"x\n")
    check("wss:// without --ca: the throwaway certificate is refused, exit 1",
          status == 1 and "TLS handshake with 127.0.0.1" in err and out == b"", f"status {status}, err {err}")
    status, out, err = await run([client, echo_wss, "--insecure"], b"anyway\n")
    check("--insecure accepts it", status == 0 and out == b"anyway\n", f"status {status}, err {err}")


async def socks_name_resolution(client, localhost_port, socks):
    url = f"ws://localhost:{localhost_port}/ws"
    before = socks.log().count("connected to")
    status, out, err = await run([client, url, "--proxy", socks.url("socks5h")], b"by name\n")
    check("socks5h:// hands the name to the proxy", status == 0 and out == b"by name\n", f"status {status}, err {err}")
    status, out, err = await run([client, url, "--proxy", socks.url("socks5")], b"resolved here\n")
    check("socks5:// resolves the name itself", status == 0 and out == b"resolved here\n", f"status {status}, err {err}")
    status, out, err = await run([client, "ws://no-such-host.invalid/ws", "--proxy", socks.url("socks5h")], b"")
    check("socks5h://: a name the proxy cannot resolve is its refusal (reply 1 or 4), exit 1",
          status == 1 and f"SOCKS5 proxy 127.0.0.1:{socks.port} refused the connection to no-such-host.invalid:80 (reply" in err,
          f"status {status}, err {err}")
    check("both went through the proxy", socks.log().count("connected to") >= before + 2, socks.log())


async def proxy_refusals(client, echo_ws, http_open, http_auth, socks_open, socks_auth):
    port = echo_port(echo_ws)
    cases = [
        (http_auth.url(credentials=""), "407 without credentials",
         f"proxy 127.0.0.1:{http_auth.port} refused CONNECT to 127.0.0.1:{port} (407 Proxy Authentication Required): "
         "the proxy requires authentication"),
        (http_auth.url(credentials="alice:wrong"), "wrong credentials (tinyproxy answers 401)",
         f"proxy 127.0.0.1:{http_auth.port} refused CONNECT to 127.0.0.1:{port} (401 Unauthorized): "
         "the proxy refused the CONNECT request"),
        (socks_auth.url(credentials=""), "SOCKS5 proxy that wants credentials",
         f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} accepts none of the methods offered (no authentication): "
         "no acceptable authentication method"),
        (socks_auth.url(credentials="bob:wrong"), "SOCKS5 wrong password",
         f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} refused user 'bob': username and password refused"),
    ]
    for proxy, name, expected in cases:
        status, out, err = await run([client, echo_ws, "--proxy", proxy], b"x\n")
        check(f"{name}: exit 1 and the proxy's refusal on stderr", status == 1 and expected in err and out == b"",
              f"status {status}, err {err!r}, expected {expected!r}")
    closed = f"ws://127.0.0.1:{free_port()}/ws"
    status, out, err = await run([client, closed, "--proxy", socks_open.url()], b"x\n")
    check("SOCKS5: a closed port behind the proxy is reply 5",
          status == 1 and "(reply 5): connection refused by the destination host" in err, f"status {status}, err {err}")
    status, out, err = await run([client, closed, "--proxy", http_open.url()], b"x\n")
    check("HTTP CONNECT: a closed port behind the proxy is tinyproxy's 500",
          status == 1 and f"proxy 127.0.0.1:{http_open.port} refused CONNECT to" in err and "(500 " in err,
          f"status {status}, err {err}")
    nobody = free_port()
    status, out, err = await run([client, echo_ws, "--proxy", f"http://127.0.0.1:{nobody}"], b"x\n")
    check("a proxy nobody listens on: exit 1, 'cannot be reached'",
          status == 1 and f"proxy 127.0.0.1:{nobody} cannot be reached" in err, f"status {status}, err {err}")
    status, out, err = await run([client, echo_ws, "--proxy", "https://127.0.0.1:1"], b"x\n")
    check("an https:// proxy URL is refused with a clear message",
          status == 1 and "is not an http://, socks5:// or socks5h:// URI" in err, f"status {status}, err {err}")


async def environment_proxies(client, echo_ws, echo_wss, ca, http_auth, http_open):
    port = echo_port(echo_ws)
    refused = f"proxy 127.0.0.1:{http_auth.port} refused CONNECT to 127.0.0.1:{port} (407"
    env = clean_environment(http_proxy=http_auth.url(credentials=""))
    status, out, err = await run([client, echo_ws], b"x\n", env)
    check("http_proxy is used by default for ws://", status == 1 and refused in err, f"status {status}, err {err}")
    status, out, err = await run([client, echo_ws, "--no-proxy"], b"direct\n", env)
    check("--no-proxy ignores it", status == 0 and out == b"direct\n", f"status {status}, err {err}")
    env = clean_environment(HTTP_PROXY=http_auth.url(credentials=""), no_proxy="localhost,127.0.0.1")
    status, out, err = await run([client, echo_ws], b"listed\n", env)
    check("no_proxy sends a listed host direct", status == 0 and out == b"listed\n", f"status {status}, err {err}")
    env = clean_environment(all_proxy=http_auth.url(credentials=""))
    status, out, err = await run([client, echo_ws], b"x\n", env)
    check("all_proxy when no scheme-specific variable is set", status == 1 and refused in err, f"status {status}, err {err}")
    before = http_open.log().count("CONNECT")
    env = clean_environment(https_proxy=http_open.url(), http_proxy=http_auth.url(credentials=""))
    status, out, err = await run([client, echo_wss, "--ca", ca], b"secure by env\n", env)
    check("https_proxy for wss:// (and not http_proxy)",
          status == 0 and out == b"secure by env\n" and http_open.log().count("CONNECT") > before,
          f"status {status}, err {err}")


async def options_against_python(client, base, echo_ws):
    status, out, err = await run([client, base + "/headers", "-H", "X-Duplex-Test: forty two"], b"", lines_before_end=1)
    check("-H adds a request header", status == 0 and out == b"forty two\n", f"status {status}, out {out!r}, err {err}")
    status, out, err = await run([client, base + "/subprotocol", "--protocol", "chat.v9", "--protocol", "chat.v1", "-v"],
                                 b"", lines_before_end=1)
    check("--protocol offers sub-protocols; -v says which was chosen",
          status == 0 and out == b"chat.v1\n" and "sub-protocol chat.v1" in err, f"status {status}, out {out!r}, err {err}")
    status, out, err = await run([client, base + "/extensions", "--compression"], b"compressed " * 50 + b"\n",
                                 lines_before_end=2)
    first, _, rest = out.partition(b"\n")
    check("--compression offers permessage-deflate and the server accepts it; messages still echo",
          status == 0 and first.startswith(b"permessage-deflate") and b"| permessage-deflate" in first
          and rest == b"compressed " * 50 + b"\n", f"status {status}, out {out!r}, err {err}")
    payload = bytes(range(256)) * 300
    status, out, err = await run([client, echo_ws, "--binary"], payload)
    check("--binary: stdin as binary messages, what arrives written raw (duplex-echo)", status == 0 and out == payload,
          f"status {status}, {len(out)} bytes back of {len(payload)}, err {err}")
    status, out, err = await run([client, base + "/echo", "--close", "4000:done here", "-v"], b"one\n", lines_before_end=1)
    check("--close CODE:REASON is the close sent at the end of the input; -v shows both closes",
          status == 0 and "sending close 4000 'done here'" in err and "received close 4000 'done here'" in err,
          f"status {status}, err {err}")
    status, out, err = await run([client, base + "/echo"], "żółw ünïcödé\n".encode(), lines_before_end=1)
    check("UTF-8 lines go and come back whole", status == 0 and out == "żółw ünïcödé\n".encode(), f"status {status}")
    status, out, err = await run([client, echo_ws], b"ok\n\xff\xfe\n")
    check("a line that is not UTF-8 is refused (use --binary), exit 1 (duplex-echo)",
          status == 1 and out == b"ok\n" and "line 2 is not UTF-8 text" in err, f"status {status}, out {out!r}, err {err}")
    status, out, err = await run([client, echo_ws], b"no newline at the end")
    check("a last line without a newline is sent (duplex-echo)", status == 0 and out == b"no newline at the end\n", f"out {out!r}")
    status, out, err = await run([client, base + "/close-1011"], b"")
    check("a server closing with 1011: exit 3, the code on stderr", status == 3 and "1011" in err, f"status {status}, err {err}")
    status, out, err = await run([client, base + "/reject"], b"")
    check("a refused handshake (403): exit 1, the status on stderr",
          status == 1 and "403" in err and "cannot connect to" in err, f"status {status}, err {err}")


async def raw_server_checks(client, raw_base):
    process = await asyncio.create_subprocess_exec(client, raw_base + "/ping", "--ping-interval", "0.05",
                                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, env=clean_environment())
    try:
        line = await asyncio.wait_for(process.stdout.readline(), RUN_TIMEOUT)
        process.stdin.close()
        status = await asyncio.wait_for(process.wait(), RUN_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        line, status = b"(nothing)", None
    check("--ping-interval: the server receives pings", line == b"got ping\n" and status == 0, f"{line!r}, status {status}")
    status, out, err = await run([client, raw_base + "/protocol-error"], b"")
    check("a protocol error from the server: exit 1 and why on stderr",
          status == 1 and "protocol" in err.lower(), f"status {status}, err {err}")


def interactive(client, echo_ws):
    """A terminal: a prompt, messages shown as they arrive, Ctrl-D closes."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(client, [client, echo_ws], clean_environment())
    seen = b""

    def read_until(marker, limit=RUN_TIMEOUT):
        nonlocal seen
        deadline = time.monotonic() + limit
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        return marker in seen

    prompt = read_until(b"> ")
    os.write(fd, b"over the terminal\n")
    shown = read_until(b"< over the terminal")
    os.write(fd, b"\x04")  # Ctrl-D: the end of the input
    _, wait_status = os.waitpid(pid, 0)
    os.close(fd)
    check("on a terminal: a prompt, each message shown as '< …' when it arrives, Ctrl-D closes with exit 0",
          prompt and shown and os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0,
          f"prompt {prompt}, shown {shown}, wait status {wait_status}, output {seen!r}")


async def usage(client):
    for arguments, name in (([], "no URL"), (["ws://h/", "--close", "1005"], "a close code that may not be sent"),
                            (["ws://h/", "--bogus"], "an unknown option"), (["ws://h/", "-H", "nocolon"], "a bad -H")):
        status, out, err = await run([client, *arguments])
        check(f"usage error ({name}): exit 2 and the usage text", status == 2 and "usage: duplex-client" in err,
              f"status {status}, err {err}")
    status, out, err = await run([client, "--help"])
    check("--help prints the usage, exit 0", status == 0 and b"usage: duplex-client" in out, f"status {status}")


async def api_tests(api, echo_ws, http_open, http_auth, socks_open, socks_auth, silent_port):
    env = clean_environment(DUPLEX_TEST_ECHO=echo_ws, DUPLEX_TEST_HTTP_PROXY=http_open.url(),
                            DUPLEX_TEST_HTTP_PROXY_AUTH=http_auth.url(credentials=""),
                            DUPLEX_TEST_HTTP_PROXY_CREDENTIALS=http_auth.credentials,
                            DUPLEX_TEST_SOCKS_PROXY=socks_open.url(),
                            DUPLEX_TEST_SOCKS_PROXY_AUTH=socks_auth.url(credentials=""),
                            DUPLEX_TEST_SOCKS_PROXY_CREDENTIALS=socks_auth.credentials,
                            DUPLEX_TEST_SILENT_PROXY=f"http://127.0.0.1:{silent_port}")
    status, out, err = await run([api], b"", env)
    text = out.decode(errors="replace") + err
    print(text, flush=True)
    check("proxy-api (connect_options::proxy and use_environment_proxy through the real proxies)", status == 0, text)


async def main(args):
    os.makedirs(args.work, exist_ok=True)
    certs = os.path.join(args.work, "certs")
    subprocess.run(["bash", args.make_certs, certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
    ca = os.path.join(certs, "ca.pem")
    proxies = [start_tinyproxy(args.work, "tinyproxy"), start_tinyproxy(args.work, "tinyproxy-auth", "alice:s3cret"),
               start_microsocks(args.work, "microsocks"), start_microsocks(args.work, "microsocks-auth", "bob:pa55")]
    http_open, http_auth, socks_open, socks_auth = proxies
    echo, http_port, https_port = await start_echo(args.echo, certs)
    localhost_echo, localhost_port = await start_localhost_echo(args.echo)
    # Accepts and never answers: a proxy that never sets the tunnel up.
    silent = await asyncio.start_server(lambda r, w: asyncio.sleep(3600), "127.0.0.1", 0)
    try:
        echo_ws, echo_wss = f"ws://127.0.0.1:{http_port}/ws", f"wss://127.0.0.1:{https_port}/ws"
        async with websockets.serve(python_handler, "127.0.0.1", 0, process_request=python_process_request,
                                    subprotocols=["chat.v1", "chat.v2"], ping_interval=None) as python_server, \
                await asyncio.start_server(raw_handler, "127.0.0.1", 0) as raw_server:
            python_base = f"ws://127.0.0.1:{python_server.sockets[0].getsockname()[1]}"
            raw_base = f"ws://127.0.0.1:{raw_server.sockets[0].getsockname()[1]}"
            await acceptance(args.client, echo_ws, proxies)
            await secure_through_proxies(args.client, echo_wss, ca, [http_open, socks_open, socks_auth])
            await socks_name_resolution(args.client, localhost_port, socks_open)
            await proxy_refusals(args.client, echo_ws, http_open, http_auth, socks_open, socks_auth)
            await environment_proxies(args.client, echo_ws, echo_wss, ca, http_auth, http_open)
            await options_against_python(args.client, python_base, echo_ws)
            await raw_server_checks(args.client, raw_base)
            await asyncio.get_running_loop().run_in_executor(None, interactive, args.client, echo_ws)
            await usage(args.client)
            await api_tests(args.api, echo_ws, http_open, http_auth, socks_open, socks_auth,
                            silent.sockets[0].getsockname()[1])
    finally:
        silent.close()
        for server in (echo, localhost_echo):
            server.terminate()
            await server.wait()
        for proxy in proxies:
            proxy.stop()
    return summary()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, help="path to duplex-client")
    parser.add_argument("--echo", required=True, help="path to duplex-echo")
    parser.add_argument("--api", required=True, help="path to the proxy-api doctest program")
    parser.add_argument("--make-certs", required=True, help="path to make-certs.sh")
    parser.add_argument("--work", required=True, help="a directory for certificates and proxy configuration")
    sys.exit(asyncio.run(main(parser.parse_args())))
