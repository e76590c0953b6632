"""A real promptledger server for each test: the binary the Rust build made
(`PROMPTLEDGER_BIN`, default `$CARGO_TARGET_DIR/debug/promptledger`), a fresh SQLite
file, an admin key and an app key made with its command line."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import httpx
import pytest


def _binary() -> str:
    if os.environ.get("PROMPTLEDGER_BIN"):
        return os.environ["PROMPTLEDGER_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/promptledger/target")
    return str(Path(target) / "debug" / "promptledger")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    db: Path
    admin: str
    app: str
    process: Optional[subprocess.Popen] = None
    port: int = 0

    def api(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, key: Optional[str] = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key or self.admin}"}
        return httpx.request(method, f"{self.base}{path}", json=body, headers=headers, timeout=10)

    def start(self) -> None:
        env = {**os.environ, "RUST_LOG": "warn"}
        self.process = subprocess.Popen(
            [_binary(), "--db", str(self.db), "serve", "--addr", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).text == "ok":
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


def _key(db: Path, name: str, scope: str) -> str:
    out = subprocess.run(
        [_binary(), "--db", str(db), "apikey", "create", "--name", name, "--scope", scope],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "registry.db"
    admin = _key(db, "admin", "admin")
    app = _key(db, "app", "app")
    port = _free_port()
    s = Server(base=f"http://127.0.0.1:{port}", db=db, admin=admin, app=app, port=port)
    s.start()
    yield s
    s.stop()
