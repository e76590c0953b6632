"""Python client benchmarks (issue 14): promotion -> the client serves the new version
(p50/p99 over 200 promotions, goal p99 <= 100 ms), and cached `get` calls per second
(goal >= 500,000/s). Starts the real server binary (`PROMPTLEDGER_BIN`) on a temporary
database. Prints figures; asserts nothing.

    . scripts/env.sh && $PROMPTLEDGER_TEST_PYTHON clients/python/bench.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))

from conftest import Server, _free_port, _key  # noqa: E402
from promptledger import Client  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        admin, app = _key(db, "admin", "admin"), _key(db, "app", "app")
        port = _free_port()
        server = Server(base=f"http://127.0.0.1:{port}", db=db, admin=admin, app=app, port=port)
        server.start()
        try:
            server.api("POST", "/api/v1/prompts", {"name": "bench", "template": "v1 {{ x }}"})
            server.api("POST", "/api/v1/prompts/bench/versions", {"base_version": 1, "template": "v2 {{ x }}"})
            server.api("PUT", "/api/v1/prompts/bench/labels/stable", {"version": 1})
            with Client(server.base, app) as client:
                while not client.stream_connected:
                    time.sleep(0.01)
                client.get("bench")
                took = []
                for i in range(200):
                    version = 2 if i % 2 == 0 else 1
                    started = time.perf_counter()
                    server.api("PUT", "/api/v1/prompts/bench/labels/stable", {"version": version})
                    while client.get("bench").version != version:
                        time.sleep(0.0005)
                    took.append((time.perf_counter() - started) * 1000)
                took.sort()
                print("[promotion -> the client serves the new version, 200 promotions over HTTP]")
                print(f"  p50 {took[100]:.1f} ms  p99 {took[197]:.1f} ms  max {took[-1]:.1f} ms  (goal p99 <= 100 ms; includes the PUT itself)")
                n = 1_000_000
                started = time.perf_counter()
                for _ in range(n):
                    client.get("bench")
                rate = n / (time.perf_counter() - started)
                print("[cached get, one thread]")
                print(f"  {rate:,.0f} calls/s  (goal >= 500,000/s)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
