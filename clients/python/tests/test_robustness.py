"""The client's background work under faults, against the real server: bad generations,
refused batches, concurrency, flush and close, the event stream's freshness races, and
the outage paths (lockfile mode, failed refreshes)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from datetime import datetime

import httpx
import pytest

import promptledger.client
from promptledger import Client, Unavailable
from test_client import create, lock, promote, save, wait_until


def generation_exists(server, id):
    return server.api("GET", f"/api/v1/generations/{id}").status_code == 200


@pytest.fixture()
def hung_server():
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    t.join()
    for s in held:
        s.close()
    listener.close()


# ------------------------------------------------------------------ generations


def test_an_unserialisable_generation_is_dropped_and_counted_and_the_sender_lives_on(server):
    create(server, "g", "x")
    promote(server, "g", 1)
    with Client(server.base, server.app, stream=False) as client:
        p = client.get("g")
        client.generation(p, id="bad-1", metadata={"at": datetime.now()}).end()
        client.generation(p, id="bad-2", input_tokens=float("nan")).end()  # not JSON
        client.generation(p, id="good-1").end()
        assert client.flush(timeout=10)
        assert client.dropped_generations == 2
        assert client._sender.is_alive()
        client.generation(p, id="good-2").end()
        assert client.flush(timeout=10)
    assert generation_exists(server, "good-1") and generation_exists(server, "good-2")
    assert not generation_exists(server, "bad-1")


def test_concurrent_producers_never_see_queue_full_and_every_loss_is_counted(server):
    create(server, "g", "x")
    promote(server, "g", 1)
    client = Client(server.base, server.app, stream=False, max_pending_generations=5, flush_interval=0.05)
    p = client.get("g")
    server.stop()
    errors = []
    threads, per_thread = 8, 400

    def produce(t):
        try:
            for i in range(per_thread):
                client.generation(p, id=f"c-{t}-{i}").end()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [], f"a producer saw {errors[:1]!r}"
    client.close(timeout=0.5)
    assert client.dropped_generations == threads * per_thread, "nothing was sent: every generation is counted as lost"


@pytest.mark.parametrize("byte_cap", [None, 64 * 1024 * 1024], ids=["batches-under-the-limit", "split-on-413"])
def test_a_refused_item_is_dropped_alone_and_an_oversized_batch_is_split(server, monkeypatch, byte_cap):
    if byte_cap is not None:
        # Batches the client would keep small: the server's 413 splits them instead.
        monkeypatch.setattr(promptledger.client, "_MAX_BATCH_BYTES", byte_cap)
    create(server, "g", "x")
    promote(server, "g", 1)
    with Client(server.base, server.app, stream=False, flush_interval=0.5) as client:
        p = client.get("g")
        # 422: one invalid item (an unknown status) in the middle of a batch.
        client.generation(p, id="ok-a").end()
        client.generation(p, id="invalid").end(status="weird")
        client.generation(p, id="ok-b").end()
        # 413: 200 items of 30 KB are more than the 5 MiB a request may carry.
        for i in range(200):
            client.generation(p, id=f"big-{i}", output="y" * 30_000).end()
        # One item larger than any request may be: dropped alone.
        client.generation(p, id="huge", output="z" * 6_000_000).end()
        client.flush(timeout=30)
        assert client.dropped_generations == 2
    assert generation_exists(server, "ok-a") and generation_exists(server, "ok-b")
    assert not generation_exists(server, "invalid") and not generation_exists(server, "huge")
    assert all(generation_exists(server, f"big-{i}") for i in range(200))


def test_flush_waits_for_what_is_in_flight_and_close_counts_what_it_lost(server, hung_server):
    create(server, "g", "x")
    promote(server, "g", 1)
    with Client(server.base, server.app, stream=False) as real:
        p = real.get("g")
    client = Client(hung_server, stream=False, timeout=3.0)
    client.generation(p, id="never-answered").end()
    assert client.flush(timeout=1.0) is False, "the server never answered: nothing was sent"
    started = time.monotonic()
    client.close(timeout=1.0)
    assert time.monotonic() - started < 10
    assert client.dropped_generations == 1


def test_close_retries_for_a_bounded_time_then_counts_what_is_lost(server):
    create(server, "g", "x")
    promote(server, "g", 1)
    client = Client(server.base, server.app, stream=False, flush_interval=0.05)
    p = client.get("g")
    server.stop()
    for i in range(5):
        client.generation(p, id=f"lost-{i}").end()
    client.close(timeout=0.5)
    assert client.dropped_generations == 5
    assert not client._sender.is_alive()
    client.generation(p, id="after-close").end()
    assert client.dropped_generations == 6, "a generation after close is counted, not queued forever"


# ------------------------------------------------------------------ the event stream


def test_close_stops_the_event_stream_thread(server):
    create(server, "p", "x")
    promote(server, "p", 1)
    client = Client(server.base, server.app)
    assert wait_until(lambda: client.stream_connected)
    client.get("p")
    client.close()
    assert not client._streamer.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "promptledger-events" and t.is_alive()]


def test_a_promotion_racing_the_first_get_is_not_lost(server):
    create(server, "race", "one")
    promote(server, "race", 1)
    save(server, "race", 1, "two")
    with Client(server.base, server.app) as client:
        assert wait_until(lambda: client.stream_connected)
        done = threading.Event()

        def promote_while_in_flight(response):
            # The server has answered version 1; before the client stores it, the
            # promotion commits and its event is handled.
            if response.request.url.path.endswith("/prompts/race") and not done.is_set():
                done.set()
                seen = client._last_event_id
                promote(server, "race", 2)
                assert wait_until(lambda: client._last_event_id != seen)
                time.sleep(0.3)

        client._http.event_hooks["response"].append(promote_while_in_flight)
        client.get("race")
        assert done.is_set()
        assert wait_until(lambda: client.get("race").version == 2), "the cache kept version 1"


def test_an_event_refresh_gives_base_arm_units_their_rollout(server):
    create(server, "r", "base")
    promote(server, "r", 1)
    save(server, "r", 1, "candidate")
    units = [f"user-{i}" for i in range(24)]
    with Client(server.base, server.app) as client:
        assert wait_until(lambda: client.stream_connected)
        for u in units:
            assert client.get("r", unit=u).rollout is None
        r = server.api("POST", "/api/v1/prompts/r/rollouts", {"label": "stable", "version": 2, "steps": [50, 100], "step_seconds": 3600})
        assert r.status_code == 201, r.text
        rollout = r.json()["id"]
        assert wait_until(lambda: all(client.get("r", unit=u).rollout is not None for u in units)), "a unit kept rollout=None"
        arms = set()
        for u in units:
            p = client.get("r", unit=u)
            served = httpx.get(f"{server.base}/api/v1/prompts/r", params={"unit": u}, headers={"authorization": f"Bearer {server.app}"}).json()
            assert (p.version, p.rollout["id"], p.rollout["arm"]) == (served["version"], rollout, served["rollout"]["arm"])
            arms.add(p.rollout["arm"])
        assert "base" in arms
        base_unit = next(u for u in units if client.get("r", unit=u).rollout["arm"] == "base")
        client.generation(client.get("r", unit=base_unit), id="base-arm").end()
        assert client.flush()
    got = server.api("GET", "/api/v1/generations/base-arm").json()
    assert (got["rollout"], got["arm"]) == (rollout, "base")


def test_a_version_pinned_get_follows_its_label_include(server):
    create(server, "shared", "Kind.")
    promote(server, "shared", 1)
    create(server, "bot", '{% include "shared@stable" %} Hi')
    with Client(server.base, server.app) as client:
        assert wait_until(lambda: client.stream_connected)
        assert client.get("bot", version=1).render() == "Kind. Hi"
        save(server, "shared", 1, "Very kind.")
        promote(server, "shared", 2)
        assert wait_until(lambda: client.get("bot", version=1).render() == "Very kind. Hi"), "the pinned version kept the old include"


def test_the_stream_counts_as_up_only_after_the_reconnect_refresh(server):
    create(server, "p", "one")
    promote(server, "p", 1)
    save(server, "p", 1, "two")
    with Client(server.base, server.app) as client:
        assert wait_until(lambda: client.stream_connected)
        assert client.get("p").version == 1
        entered, release = threading.Event(), threading.Event()

        def hold_the_refresh(request):
            if threading.current_thread().name == "promptledger-events" and "/prompts/" in request.url.path:
                entered.set()
                release.wait(10)

        client._http.event_hooks["request"].append(hold_the_refresh)
        server.stop()
        assert wait_until(lambda: not client.stream_connected)
        server.start()
        promote(server, "p", 2)
        try:
            assert entered.wait(15), "the client never reconnected"
            p = client.get("p")
            assert p.version == 2, f"served {p.version} from '{p.source}' while the refresh was still running"
        finally:
            release.set()
        assert wait_until(lambda: client.stream_connected)


def test_a_failed_refresh_keeps_the_copy_an_outage_serves(server):
    create(server, "p", "one")
    promote(server, "p", 1)
    save(server, "p", 1, "two")
    client = Client(server.base, server.app, timeout=1.0)
    assert wait_until(lambda: client.stream_connected)
    assert client.get("p").version == 1
    failed = threading.Event()

    def blip(request):
        # A transient network failure on the refresh the promotion's event triggers.
        if threading.current_thread().name == "promptledger-events" and "/prompts/" in request.url.path:
            failed.set()
            raise httpx.ConnectError("injected network blip", request=request)

    client._http.event_hooks["request"].append(blip)
    promote(server, "p", 2)
    assert wait_until(failed.is_set)
    time.sleep(0.2)
    server.stop()
    assert wait_until(lambda: not client.stream_connected)
    stale = client.get("p")
    assert (stale.version, stale.source) == (1, "stale")
    client.close(timeout=0.5)


# ------------------------------------------------------------------ lockfile mode and fallbacks


def test_lockfile_mode_raises_unavailable_or_serves_the_fallback_when_the_server_is_down(server, tmp_path):
    create(server, "bot", "Hi {{ who }}")
    promote(server, "bot", 1)
    lockfile = lock(server, "bot@stable", tmp_path / "prompts.lock")
    server.stop()
    client = Client(server.base, server.app, lockfile=str(lockfile), timeout=1.0)
    with pytest.raises(Unavailable):
        client.get("bot")
    fallback = client.get("bot", fallback="Hello {{ who }}")
    assert fallback.is_fallback and fallback.render(who="Ada") == "Hello Ada"
    with pytest.raises(Unavailable):
        client.verify_lock()
    client.close(timeout=0.5)


@pytest.mark.parametrize(
    "fallback, variables, expected",
    [
        ("Hi {{ name|title }}", {"name": "ada"}, "Hi Ada"),
        ("Hi {{ user.name }}", {"user": {"name": "Ada"}}, "Hi Ada"),
        ("{% if vip %}Dear{% else %}Hi{% endif %} {{ name }}", {"vip": False, "name": "Ada"}, "Hi Ada"),
        ("{% for o in orders %}{{ loop.index }}:{{ o }} {% endfor %}", {"orders": ["a", "b"]}, "1:a 2:b "),
    ],
)
def test_fallback_variables_are_the_ones_the_template_uses(server, fallback, variables, expected):
    client = Client(server.base, server.app, stream=False, timeout=1.0)
    server.stop()
    p = client.get("never-fetched", fallback=fallback)
    assert sorted(p.variables) == sorted(variables)
    assert p.render(**variables) == expected
    client.close(timeout=0.5)


def test_a_hung_server_holds_one_get_for_the_timeout_then_the_fallback_is_served_at_once(hung_server):
    with Client(hung_server, "key", stream=False, timeout=1.0, retry_after=2.0) as client:
        started = time.monotonic()
        first = client.get("support/greeting", fallback="Hello {{ name }}")
        waited = time.monotonic() - started
        assert first.source == "fallback" and waited >= 0.9, waited
        started = time.monotonic()
        for _ in range(20):
            again = client.get("support/greeting", fallback="Hello {{ name }}")
            assert again.source == "fallback"
        assert time.monotonic() - started < 0.9, "no call waited on the hung server again"
        # A get with nothing else to serve still asks the server.
        with pytest.raises(Unavailable):
            client.get("support/other")
        # After the quiet period, the server is asked again.
        time.sleep(2.1)
        started = time.monotonic()
        client.get("support/greeting", fallback="Hello {{ name }}")
        assert time.monotonic() - started >= 0.9
