#!/usr/bin/python3
"""Scale-out end to end: three duplex-chat nodes joined by a real Redis, behind a real nginx, with 300
python3-websockets clients connected through nginx (and HAProxy at the end). Everything is started here on
free ports of 127.0.0.1 and ended by its PID; Debian's redis-server, nginx and haproxy must be installed
(missing, the test fails).

    /usr/bin/python3 tests/cluster/cluster_test.py --chat build/examples/duplex-chat

Scenarios, in order (each "round": every client sends messages, and every member of a room must get every
message of its room exactly once, each sender's in order, nothing from elsewhere):
  1. a wrong Redis password, and an unreachable Redis: duplex-chat exits at once with a clear error;
  2. 300 clients in 6 rooms spread over the three nodes by nginx's least_conn; a round;
  3. Redis killed with SIGKILL while clients send, restarted 1 s later: what arrives is at most once and
     in order; the nodes resubscribe within a few seconds; a round afterwards is complete;
  4. CLIENT KILL TYPE pubsub: resubscribed; a round;
  5. a pubsub client-output-buffer-limit of 256 KiB and a node stopped (SIGSTOP) under a flood: Redis drops
     that node's subscription; once it runs again it resubscribes; a round;
  6. a node killed with SIGKILL: its clients reconnect through nginx to the others; a round;
  7. the README's HAProxy configuration in front of the same nodes: 40 more clients, a round.
The last line is "N passed, M failed"; exit status 1 when anything failed.
"""

import argparse
import asyncio
import collections
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import processes  # noqa: E402
from checks import check, summary  # noqa: E402

ROOMS = 6
PER_ROOM = 50
PASSWORD = "cluster pass"
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
RECOVERY_LIMIT = 5.0  # seconds: "within a few seconds"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def require(program):
    if not os.access(program, os.X_OK):
        print(f"FAIL {program} is missing (apt-get install {os.path.basename(program)}; scripts/setup.sh does)")
        sys.exit(1)


# ---- Redis ------------------------------------------------------------------------------------------

def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_read(f):
    """One RESP2 reply from a buffered socket file."""
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise ValueError(f"not RESP2: {line!r}")


class Redis:
    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = workdir
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", PASSWORD, "--dir", self.workdir,
             "--logfile", os.path.join(self.workdir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port):
            raise RuntimeError("redis-server did not start")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def url(self, password=PASSWORD):
        return f"redis://:{password.replace(' ', '%20')}@127.0.0.1:{self.port}"

    def command(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            s.sendall(resp_command("AUTH", PASSWORD) + resp_command(*args))
            resp_read(f)
            return resp_read(f)

    def pubsub_clients(self):
        listing = self.command("CLIENT", "LIST", "TYPE", "pubsub")
        return len([line for line in listing.decode().splitlines() if line.strip()])

    def subscribers(self, channel):
        return self.command("PUBSUB", "NUMSUB", channel)[1]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


# ---- duplex-chat nodes and nginx --------------------------------------------------------------------

class Process:
    """A child process whose output is drained into a list; ended by its PID."""

    def __init__(self, argv):
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.output = []
        self.lines = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, pattern, within=10.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            match = pattern.search(line)
            if match:
                return match
        return None

    def signal(self, sig):
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self):
        self.signal(signal.SIGCONT)  # a node a check stopped must be running to answer SIGTERM
        processes.stop(self.process)


class Node(Process):
    def __init__(self, chat, backplane):
        self.port = free_port()
        super().__init__([chat, "--urls", f"http://127.0.0.1:{self.port}", "--threads", "2",
                          "--backplane", backplane])
        if not self.wait_for_line(BANNER):
            raise RuntimeError("duplex-chat did not start: " + " | ".join(self.output[-10:]))

    def connections(self):
        """Established TCP connections to this node's port (clients through nginx), from /proc/net/tcp."""
        count = 0
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].split(":")[1], 16)
                if local_port == self.port and fields[3] == "01":
                    count += 1
        return count


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream duplex {{
        least_conn;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://duplex;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 150s;
            proxy_send_timeout 150s;
        }}
    }}
}}
"""


class Nginx(Process):
    def __init__(self, workdir, nodes):
        self.port = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{n.port} max_fails=1 fail_timeout=5s;" for n in nodes)
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=workdir, servers=servers, port=self.port))
        super().__init__(["/usr/sbin/nginx", "-p", workdir, "-c", conf, "-g", "daemon off;"])
        if not wait_for_port(self.port):
            raise RuntimeError("nginx did not start: " + " | ".join(self.output[-10:]))

    def stop(self):
        self.signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


HAPROXY_CONF = """
defaults
    mode http
    timeout connect 5s
    timeout client  30s
    timeout server  30s
    timeout tunnel  1h
    timeout client-fin 30s
frontend chat
    bind 127.0.0.1:{port}
    default_backend duplex
backend duplex
    balance leastconn
    option httpchk GET /
{servers}
"""


class HAProxy(Process):
    """The README's HAProxy configuration, on free ports."""

    def __init__(self, workdir, nodes):
        self.port = free_port()
        servers = "\n".join(f"    server node{i} 127.0.0.1:{n.port} check inter 500ms" for i, n in enumerate(nodes))
        conf = os.path.join(workdir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(HAPROXY_CONF.format(port=self.port, servers=servers))
        super().__init__(["/usr/sbin/haproxy", "-f", conf])
        if not wait_for_port(self.port):
            raise RuntimeError("haproxy did not start: " + " | ".join(self.output[-10:]))


# ---- the clients ------------------------------------------------------------------------------------

class Client:
    """One chat member that reconnects through nginx when its connection drops (bounded attempts)."""

    def __init__(self, url, room, name, direct=False):
        self.url = f"{url}/chat?room={room}&name={name}"
        self.room, self.name = room, name
        self.received = collections.defaultdict(list)  # tag -> [(sender, seq)]
        self.others = 0
        self.connected = asyncio.Event()
        self.ws = None
        self.reconnects = 0
        self.closed_for_good = False
        self.task = asyncio.ensure_future(self.run())

    async def run(self):
        for attempt in range(100):
            try:
                self.ws = await websockets.connect(self.url, max_queue=None, open_timeout=5, ping_interval=None)
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                continue
            self.connected.set()
            try:
                async for raw in self.ws:
                    m = json.loads(raw)
                    if m["type"] == "message":
                        tag, sender, seq = m["text"].split("|")
                        if m["name"] != sender:
                            self.others += 1
                        self.received[tag].append((sender, int(seq)))
            except websockets.exceptions.ConnectionClosed:
                pass
            self.connected.clear()
            if self.closed_for_good:
                return
            self.reconnects += 1
            await asyncio.sleep(0.05)

    async def send(self, tag, seq):
        await self.ws.send(f"{tag}|{self.name}|{seq}")

    async def close(self):
        self.closed_for_good = True
        if self.ws:
            await self.ws.close()
        try:
            await asyncio.wait_for(self.task, 5)
        except asyncio.TimeoutError:
            self.task.cancel()


def verify(clients, tag, senders_by_room, each, exact=True):
    """(complete, problems): every client's receipts for `tag` against what its room's senders sent."""
    problems = []
    complete = True
    for c in clients:
        got = c.received.get(tag, [])
        counts = collections.Counter(got)
        expected = {(s, k) for s in senders_by_room[c.room] for k in range(each)}
        foreign = [g for g in counts if g not in expected]
        duplicates = [g for g, n in counts.items() if n > 1]
        last = {}
        out_of_order = []
        for sender, seq in got:
            if seq <= last.get(sender, -1):
                out_of_order.append((sender, seq))
            last[sender] = seq
        if foreign or duplicates or out_of_order:
            problems.append(f"{c.name}: foreign {foreign[:3]} duplicates {duplicates[:3]} out of order {out_of_order[:3]}")
        if exact and set(counts) != expected:
            complete = False
    return complete, problems


async def round_of(clients, tag, each=3, within=20.0):
    """Every client sends `each` messages; waits for every member to have its room's, then checks."""
    senders_by_room = collections.defaultdict(set)
    for c in clients:
        senders_by_room[c.room].add(c.name)
    for k in range(each):
        await asyncio.gather(*(c.send(tag, k) for c in clients))
    deadline = time.monotonic() + within
    started = time.monotonic()
    complete, problems = False, []
    while time.monotonic() < deadline:
        complete, problems = verify(clients, tag, senders_by_room, each)
        if complete or problems:
            break
        await asyncio.sleep(0.1)
    took = time.monotonic() - started
    await asyncio.sleep(0.3)  # anything arriving twice arrives by now
    complete, problems = verify(clients, tag, senders_by_room, each)
    missing = 0
    if not complete:
        for c in clients:
            expected = len(senders_by_room[c.room]) * each
            missing += expected - len(set(c.received.get(tag, [])))
    deliveries = sum(len(senders_by_room[c.room]) * each for c in clients)
    check(f"round {tag}: {deliveries} deliveries to {len(clients)} clients, each exactly once and in each "
          f"sender's order (took {took:.2f} s)", complete and not problems,
          f"{missing} missing; " + "; ".join(problems[:5]))


async def wait_until(predicate, within):
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if predicate():
                return time.monotonic() - started
        except (OSError, ConnectionError, RuntimeError, TypeError):
            pass
        await asyncio.sleep(0.05)
    return None


def subscriber_reconnections(node):
    return sum(1 for line in node.output if "subscriber" in line and "reconnected" in line)


def all_resubscribed(redis, rooms):
    return all(redis.subscribers(f"duplex:room:{r}") == 3 for r in rooms)


# ---- scenarios --------------------------------------------------------------------------------------

def start_up_errors(chat, redis):
    for what, url, expected in [
            ("a wrong password", redis.url("not the password"), "WRONGPASS"),
            ("no password", f"redis://127.0.0.1:{redis.port}", "NOAUTH"),
            ("an unreachable server", f"redis://127.0.0.1:{free_port()}", "Connection refused")]:
        started = time.monotonic()
        try:
            run = subprocess.run([chat, "--urls", "http://127.0.0.1:0", "--backplane", url], stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=15)
            output = (run.stdout + run.stderr).decode(errors="replace")
            code = run.returncode
        except subprocess.TimeoutExpired:
            output, code = "still running after 15 s", None
        took = time.monotonic() - started
        last = [line for line in output.splitlines() if line.startswith("duplex-chat:")]
        check(f"{what}: duplex-chat exits with a clear error at start-up ({took:.1f} s)",
              code == 1 and last and expected in last[-1] and "cannot use Redis" in last[-1]
              and "not the password" not in output, output[-400:])


async def scenarios(chat, workdir):
    redis = Redis(workdir)
    nodes, nginx, clients = [], None, []
    clients_behind_haproxy = []
    try:
        start_up_errors(chat, redis)
        nodes = [Node(chat, redis.url()) for _ in range(3)]
        nginx = Nginx(workdir, nodes)
        url = f"ws://127.0.0.1:{nginx.port}"
        # Rooms shuffled over the clients: nginx hands connections to the nodes in turn, so room i % 6
        # would put each room on one node alone.
        rooms_of = [i % ROOMS for i in range(ROOMS * PER_ROOM)]
        random.Random(16).shuffle(rooms_of)
        for i, room in enumerate(rooms_of):
            clients.append(Client(url, f"{room}", f"c{i}"))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        joined = await wait_until(lambda: all(c.connected.is_set() for c in clients), 30)
        check(f"{len(clients)} clients connected through nginx", joined is not None,
              f"{sum(c.connected.is_set() for c in clients)} connected")
        spread = [n.connections() for n in nodes]
        check(f"least_conn spread them over the three nodes {spread}", all(s >= 60 for s in spread), str(spread))
        rooms = range(ROOMS)
        check("each node subscribed to every room's channel (every room has members on every node)",
              await wait_until(lambda: all_resubscribed(redis, rooms), 5) is not None)

        await round_of(clients, "r1")

        # ---- Redis SIGKILL mid-run, restarted a second later.
        senders = clients[:30]

        async def trickle(tag, count):
            for k in range(count):
                await asyncio.gather(*(c.send(tag, k) for c in senders if c.connected.is_set()))
                await asyncio.sleep(0.05)

        sending = asyncio.ensure_future(trickle("outage", 40))
        await asyncio.sleep(0.5)
        redis.kill()
        await asyncio.sleep(1.0)
        redis.start()
        back = await wait_until(lambda: all_resubscribed(redis, rooms), 15)
        check(f"Redis SIGKILLed and restarted: every node resubscribed to every room within "
              f"{RECOVERY_LIMIT:.0f} s ({back if back is None else round(back, 2)} s)",
              back is not None and back < RECOVERY_LIMIT)
        await sending
        await asyncio.sleep(1.0)
        senders_by_room = collections.defaultdict(set)
        for c in senders:
            senders_by_room[c.room].add(c.name)
        _, problems = verify(clients, "outage", senders_by_room, 40, exact=False)
        delivered = sum(len(c.received.get("outage", [])) for c in clients)
        sent_deliveries = sum(len(senders_by_room[c.room]) * 40 for c in clients)
        check(f"during the outage: {delivered} of {sent_deliveries} deliveries made, none twice, each sender's in order",
              not problems and 0 < delivered < sent_deliveries, "; ".join(problems[:5]))
        lost_logged = any("messages lost (no connection to Redis)" in line for n in nodes for line in n.output)
        check("the nodes logged the messages lost while Redis was down", lost_logged)
        publisher_back = await wait_until(
            lambda: len(redis.command("CLIENT", "LIST", "TYPE", "normal").decode().splitlines()) >= 3, 5)
        check("every node's publishing connection is back", publisher_back is not None)
        await round_of(clients, "r2")

        # ---- CLIENT KILL TYPE pubsub.
        before = [subscriber_reconnections(n) for n in nodes]
        killed = redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        back = await wait_until(lambda: [subscriber_reconnections(n) for n in nodes] == [b + 1 for b in before]
                                and redis.pubsub_clients() == 3 and all_resubscribed(redis, rooms), 15)
        check(f"CLIENT KILL TYPE pubsub ({killed} killed): each node's subscriber reconnected and resubscribed "
              f"within {RECOVERY_LIMIT:.0f} s ({back if back is None else round(back, 2)} s)",
              killed == 3 and back is not None and back < RECOVERY_LIMIT)
        await round_of(clients, "r3")

        # ---- A slow node dropped by Redis' pubsub output buffer limit.
        slow = nodes[2]
        flood = Client(f"ws://127.0.0.1:{slow.port}", "flood", "flood")
        await wait_until(lambda: flood.connected.is_set(), 5)
        await wait_until(lambda: redis.subscribers("duplex:room:flood") == 1, 5)
        check("CONFIG SET client-output-buffer-limit pubsub 256kb 128kb 1",
              redis.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 256kb 128kb 1") == "OK")
        slow.signal(signal.SIGSTOP)
        payload = json.dumps({"type": "flood", "text": "x" * 65536}).encode()
        message = b"F" * 8 + b"\x00\x00" + payload  # another node's message (the backplane's wire format)
        dropped = None
        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
            f = s.makefile("rb")
            s.sendall(resp_command("AUTH", PASSWORD))
            resp_read(f)
            started = time.monotonic()
            for i in range(1000):  # at most 64 MiB
                s.sendall(resp_command("PUBLISH", "duplex:room:flood", message))
                resp_read(f)
                if i % 16 == 15 and redis.pubsub_clients() == 2:
                    dropped = time.monotonic() - started
                    break
        with open(os.path.join(workdir, "redis.log")) as log:
            said = "for overcoming of output buffer limits" in log.read()
        check(f"a stopped node under a flood: Redis dropped its subscription at the output buffer limit "
              f"({dropped if dropped is None else round(dropped, 2)} s; redis.log says so)", dropped is not None and said)
        redis.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60")
        slow.signal(signal.SIGCONT)
        back = await wait_until(lambda: redis.pubsub_clients() == 3 and all_resubscribed(redis, rooms), 15)
        check(f"the slow node resubscribed after it ran again ({back if back is None else round(back, 2)} s)",
              back is not None and back < RECOVERY_LIMIT)
        await flood.close()
        await round_of(clients, "r4")

        # ---- A node killed: its clients reconnect through nginx.
        victim = nodes[1]
        on_victim = victim.connections()
        victim.signal(signal.SIGKILL)
        victim.process.wait()
        await asyncio.sleep(0.3)
        rejoined = await wait_until(lambda: all(c.connected.is_set() for c in clients), 20)
        reconnected = sum(1 for c in clients if c.reconnects > 0)
        check(f"a node SIGKILLed with {on_victim} clients: they reconnected through nginx "
              f"({reconnected} reconnections, {rejoined if rejoined is None else round(rejoined, 2)} s)",
              rejoined is not None and reconnected >= on_victim * 0.9 and victim.connections() == 0,
              f"{sum(c.connected.is_set() for c in clients)} connected")
        survivors = [nodes[0], nodes[2]]
        check(f"the survivors hold every client {[n.connections() for n in survivors]}",
              sum(n.connections() for n in survivors) == len(clients))
        await wait_until(lambda: all(redis.subscribers(f"duplex:room:{r}") == 2 for r in rooms), 5)
        await round_of(clients, "r5")

        # ---- The README's HAProxy configuration in front of the same nodes (one of them dead).
        haproxy = HAProxy(workdir, nodes)
        try:
            await asyncio.sleep(1.2)  # its health checks (every 500 ms) find the dead node
            behind = [Client(f"ws://127.0.0.1:{haproxy.port}", "haproxy", f"h{i}") for i in range(40)]
            clients_behind_haproxy = behind
            joined = await wait_until(lambda: all(c.connected.is_set() for c in behind), 10)
            check("40 clients connected through HAProxy (tunnel mode after the 101, leastconn)", joined is not None)
            await round_of(behind, "h1")
        finally:
            await asyncio.gather(*(c.close() for c in clients_behind_haproxy), return_exceptions=True)
            haproxy.stop()
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if nginx:
            nginx.stop()
        for n in nodes:
            n.stop()
        redis.stop()
    for n in nodes:
        crashed = [line for line in n.output if "error" in line.lower() and "redis" not in line.lower()]
        if crashed:
            print("node output:", "\n".join(crashed[:10]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chat", required=True)
    args = parser.parse_args()
    require("/usr/bin/redis-server")
    require("/usr/sbin/nginx")
    require("/usr/sbin/haproxy")
    workdir = tempfile.mkdtemp(prefix="duplex-cluster-")
    try:
        asyncio.run(asyncio.wait_for(scenarios(os.path.abspath(args.chat), workdir), 240))
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check("the scenarios ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
