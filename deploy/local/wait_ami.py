#!/usr/bin/env python3
"""Wait until Asterisk's AMI accepts a login and reports FullyBooted.

Usage: wait_ami.py HOST PORT USER SECRET_FILE [TIMEOUT_S]
Exits 0 when booted, 1 with a message when the timeout passes. Uses a plain
socket on purpose: it checks the stack before the project venv is trusted.
"""

from __future__ import annotations

import socket
import sys
import time


def try_once(host: str, port: int, user: str, secret: str, deadline: float) -> bool:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(max(0.5, deadline - time.monotonic()))
        buf = b""
        s.sendall(
            f"Action: Login\r\nActionID: w1\r\nUsername: {user}\r\nSecret: {secret}\r\nEvents: system\r\n\r\n".encode()
        )
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
            if b"Authentication failed" in buf:
                raise SystemExit("wait_ami: AMI login refused (check the secret)")
            if b"Event: FullyBooted" in buf:
                return True
            if b"Response: Success" in buf and b"w1" in buf:
                # Already booted before we logged in: FullyBooted is sent right after login.
                s.sendall(b"Action: CoreStatus\r\nActionID: w2\r\n\r\n")
    return False


def main() -> int:
    host, port, user, secret_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    secret = open(secret_file, encoding="utf-8").read().strip()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if try_once(host, port, user, secret, min(deadline, time.monotonic() + 5)):
                return 0
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    print(f"wait_ami: Asterisk AMI at {host}:{port} not FullyBooted after {timeout:.0f}s ({last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
