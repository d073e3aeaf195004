"""Azurite (the Azure Storage emulator, npm package ``azurite``) as a process the tests start and stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Where .ci/run installs it; AZURITE_BLOB overrides.
DEFAULT_BINARY = REPO / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Azurite:
    """One Azurite blob service on 127.0.0.1, its data kept on disk across restarts."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = Path(os.environ.get("AZURITE_BLOB", str(DEFAULT_BINARY)))
        if not self.binary.exists():
            raise RuntimeError(f"azurite is not installed at {self.binary}: run `npm install azurite` in .ci/node")

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/devstoreaccount1"

    def start(self) -> None:
        """Start the server and wait until it listens; a port someone else holds is an error, not a success."""
        with socket.socket() as probe:
            # SO_REUSEADDR, as Node sets it: connections of an earlier run in TIME_WAIT do not count, a listener does
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                message = f"port {self.port} on 127.0.0.1 is already in use: azurite cannot listen there"
                raise RuntimeError(message) from exc
        self.location.mkdir(parents=True, exist_ok=True)
        log = (self.location / "azurite.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited with {self.process.returncode}; see {self.location}/azurite.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("azurite did not start listening within 30 s")

    def stop(self) -> None:
        """Stop the process we started (by its id) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
