"""Writes the seed inputs of the resp_reply fuzz target: replies recorded from Debian's redis-server
(7.0.15) to the commands duplex sends (AUTH, SELECT, PING, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PING while
subscribed) and to a few that exercise every RESP2 type (nested arrays, nulls, errors, large bulks), each
reply alone, the whole stream, and a few truncated or corrupted. The redis-server is started on a free
port of 127.0.0.1 and ended by its PID. Seeds are named by the SHA-1 of their content.

  /usr/bin/python3 tests/fuzz/make_resp_corpus.py tests/fuzz/corpus/resp_reply
"""

import hashlib
import os
import socket
import subprocess
import sys
import time


def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def exchange(port, commands, expect_bytes_settle=0.3):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(commands))
        s.settimeout(expect_bytes_settle)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def split_replies(stream):
    """Splits a RESP2 stream into whole replies (the recorded ones are well formed)."""
    replies, pos = [], 0

    def value(p):
        end = stream.index(b"\r\n", p)
        kind, line = stream[p:p + 1], stream[p + 1:end]
        p = end + 2
        if kind in b"+-:":
            return p
        n = int(line)
        if kind == b"$":
            return p if n < 0 else p + n + 2
        for _ in range(max(n, 0)):
            p = value(p)
        return p

    while pos < len(stream):
        end = value(pos)
        replies.append(stream[pos:end])
        pos = end
    return replies


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--requirepass", "pw"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.02)
        plain = exchange(port, [
            command("PING"),  # NOAUTH
            command("AUTH", "wrong"), command("AUTH", "pw"), command("SELECT", "99"), command("SELECT", "3"),
            command("PING"), command("PUBLISH", "duplex:room:1", b"\x00" * 8 + b"\x00\x00{\"type\":\"message\"}"),
            command("SET", "k", "v" * 300), command("GET", "k"), command("GET", "missing"),
            command("RPUSH", "l", "a", "b", ""), command("LRANGE", "l", "0", "-1"),
            command("HSET", "h", "f", "1"), command("HGETALL", "h"),
            command("EVAL", "return {1, {2, 'x'}, nil, {}}", "0"),
            command("PUBSUB", "NUMSUB", "duplex:room:1"), command("NOSUCHCOMMAND")])
        subscribed = exchange(port, [
            command("AUTH", "pw"), command("SUBSCRIBE", "duplex:a", "duplex:b", "duplex:c"), command("PING"),
            command("UNSUBSCRIBE", "duplex:b")])
        seeds = [plain, subscribed] + split_replies(plain) + split_replies(subscribed)
        # Pushes as the subscribing connection sees them, and damaged replies.
        seeds += [
            b"*3\r\n$7\r\nmessage\r\n$8\r\nduplex:a\r\n$12\r\n\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00hi\r\n",
            b"*4\r\n$8\r\npmessage\r\n$8\r\nduplex:*\r\n$8\r\nduplex:a\r\n$1\r\nx\r\n",
            b"*3\r\n$7\r\nmessage\r\n$8\r\nduplex:a\r\n$10\r\nshort\r\n",
            b"$5\r\nhello\r\r", b"*2\r\n:1\r\n", b":12x\r\n", b"+OK\n", b"$-1\r\n*-1\r\n*0\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ]
        written = 0
        for seed in seeds:
            name = hashlib.sha1(seed).hexdigest()
            with open(os.path.join(folder, name), "wb") as f:
                f.write(seed)
            written += 1
        print(f"{written} seeds in {folder}")
    finally:
        redis.kill()
        redis.wait()


if __name__ == "__main__":
    main()
