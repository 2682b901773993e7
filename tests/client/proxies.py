"""Real proxies for the client's tests, started on 127.0.0.1 with free ports and stopped by PID: Debian's
tinyproxy (HTTP CONNECT; with BasicAuth when credentials are given) and microsocks (SOCKS5; -u/-P for
RFC 1929 credentials). A missing program is a failure, never a skip: scripts/setup.sh installs both.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import processes  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """One proxy process; `log()` is what it has written so far (tinyproxy logs each CONNECT, microsocks
    each connection), which lets a test see that a connection really went through it."""

    def __init__(self, kind, command, port, log_path, credentials):
        self.kind, self.port, self.log_path, self.credentials = kind, port, log_path, credentials
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:  # bounded: until it accepts connections, dies, or 10 s pass
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} is not listening on {port} after 10 s: {self.log()}")
                time.sleep(0.05)

    def url(self, scheme=None, credentials=None):
        scheme = scheme or ("http" if self.kind == "http" else "socks5")
        user = credentials if credentials is not None else self.credentials
        return f"{scheme}://{user + '@' if user else ''}127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        processes.stop(self.process)
        self.log_file.close()


def require(program):
    path = shutil.which(program) or (f"/usr/bin/{program}" if os.path.exists(f"/usr/bin/{program}") else None)
    if not path:
        raise RuntimeError(f"{program} is missing: scripts/setup.sh installs it (apt-get install tinyproxy-bin microsocks)")
    return path


def start_tinyproxy(directory, name, credentials=None):
    """HTTP CONNECT proxy; credentials "user:password" turn on Basic authentication."""
    port = free_port()
    config = os.path.join(directory, f"{name}.conf")
    with open(config, "w") as f:
        f.write(f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\nLogLevel Connect\n")
        if credentials:
            user, password = credentials.split(":", 1)
            f.write(f"BasicAuth {user} {password}\n")
    return Proxy("http", [require("tinyproxy"), "-d", "-c", config], port, os.path.join(directory, f"{name}.log"),
                 credentials)


def start_microsocks(directory, name, credentials=None):
    """SOCKS5 proxy; credentials "user:password" make it require RFC 1929 authentication."""
    port = free_port()
    command = [require("microsocks"), "-i", "127.0.0.1", "-p", str(port)]
    if credentials:
        user, password = credentials.split(":", 1)
        command += ["-u", user, "-P", password]
    return Proxy("socks5", command, port, os.path.join(directory, f"{name}.log"), credentials)
