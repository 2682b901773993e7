"""Records real WebSocket traffic for the fuzz corpora: a recording TCP proxy put between the
conformance suites and duplex's own programs. Standard library only; loopback only.

  capture.py echo OUTDIR ECHO_BINARY --urls http://127.0.0.1:0
      starts ECHO_BINARY, listens in front of it and prints its own "listening on" line, so
      server_suite.py --echo can be pointed at a wrapper that runs this;
  capture.py client OUTDIR CLIENT_BINARY ws://127.0.0.1:PORT AGENT
      listens in front of PORT and runs CLIENT_BINARY against the proxy (for client_suite.py --client).

Each connection is written as OUTDIR/<mode>-<n>.c2s and .s2c (client-to-server and server-to-client
bytes) when both directions have ended. grow_corpus.sh drives it; make_corpus.py turns the captures
into seed inputs.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse

HOST = "127.0.0.1"
MAX_RECORDED = 1 << 20  # bytes kept per direction: seeds are cut far below this anyway


class Recorder:
    def __init__(self, outdir, mode):
        self.outdir = outdir
        self.mode = mode
        self.count = 0
        self.lock = threading.Lock()

    def next_name(self):
        with self.lock:
            self.count += 1
            return os.path.join(self.outdir, "%s-%04d" % (self.mode, self.count))


def pump(source, sink, record):
    """Copies one direction until its end, then half-closes the other side (as the peer did)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if len(record) < MAX_RECORDED:
                record += data[: MAX_RECORDED - len(record)]
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(client, upstream_port, recorder):
    try:
        upstream = socket.create_connection((HOST, upstream_port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    c2s, s2c = bytearray(), bytearray()
    threads = [threading.Thread(target=pump, args=(client, upstream, c2s), daemon=True),
               threading.Thread(target=pump, args=(upstream, client, s2c), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    client.close()
    upstream.close()
    name = recorder.next_name()
    with open(name + ".c2s", "wb") as f:
        f.write(c2s)
    with open(name + ".s2c", "wb") as f:
        f.write(s2c)


def serve(listener, upstream_port, recorder):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=relay, args=(client, upstream_port, recorder), daemon=True).start()


def listen():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    return listener


def run_echo(outdir, binary):
    proc = subprocess.Popen([binary, "--urls", "http://%s:0" % HOST], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE)
    signal.signal(signal.SIGTERM, lambda *_: (proc.terminate(), os._exit(0)))
    port = None
    for raw in iter(proc.stdout.readline, b""):
        match = re.search(r"listening on http://[^:/\s]+:(\d+)", raw.decode("utf-8", "replace"))
        if match:
            port = int(match.group(1))
            break
    if port is None:
        sys.exit("capture: the echo server did not say where it listens")
    listener = listen()
    print("duplex-echo listening on http://%s:%d" % (HOST, listener.getsockname()[1]), flush=True)
    threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, b"")], daemon=True).start()
    try:
        serve(listener, port, Recorder(outdir, "server"))
    finally:
        proc.terminate()


def run_client(outdir, binary, url, agent):
    parsed = urllib.parse.urlsplit(url)
    listener = listen()
    threading.Thread(target=serve, args=(listener, parsed.port, Recorder(outdir, "client")), daemon=True).start()
    proxied = parsed._replace(netloc="%s:%d" % (HOST, listener.getsockname()[1])).geturl()
    sys.exit(subprocess.call([binary, proxied, agent]))


def main():
    mode, outdir, binary = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    if mode == "echo":
        run_echo(outdir, binary)
    else:
        run_client(outdir, binary, sys.argv[4], sys.argv[5])


if __name__ == "__main__":
    main()
