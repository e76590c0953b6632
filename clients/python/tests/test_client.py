"""The Python client against the real server: freshness through the event stream,
ETag revalidation, serving through an outage, lockfile mode, rollout stickiness,
generations, and local rendering that matches the server's."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from promptledger import Client, LockDriftError, RenderError, Unavailable
from conftest import _binary


def lock(server, ref, path):
    """A lockfile of `ref`, written by the real command line from the server."""
    subprocess.run(
        [_binary(), "lock", ref, "--file", str(path), "--server", server.base],
        check=True,
        capture_output=True,
        env={"PROMPTLEDGER_API_KEY": server.app, "PATH": "/usr/bin:/bin"},
    )
    return path


def create(server, name, template, **extra):
    r = server.api("POST", "/api/v1/prompts", {"name": name, "template": template, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def save(server, name, base, template):
    r = server.api("POST", f"/api/v1/prompts/{name.replace('/', '%2F')}/versions", {"base_version": base, "template": template})
    assert r.status_code == 201, r.text


def promote(server, name, version, label="stable"):
    r = server.api("PUT", f"/api/v1/prompts/{name.replace('/', '%2F')}/labels/{label}", {"version": version})
    assert r.status_code == 200, r.text


def wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


def test_a_promotion_reaches_the_cache_through_the_stream(server):
    create(server, "support/greeting", "Hello {{ customer }}")
    promote(server, "support/greeting", 1)
    save(server, "support/greeting", 1, "Hi {{ customer }}!")
    with Client(server.base, server.app) as client:
        assert wait_until(lambda: client.stream_connected)
        first = client.get("support/greeting")
        assert (first.version, first.source, first.label) == (1, "server", "stable")
        assert client.get("support/greeting").source == "cache"
        promote(server, "support/greeting", 2)
        assert wait_until(lambda: client.get("support/greeting").version == 2), "the promotion never arrived"
        served = client.get("support/greeting")
        assert served.source == "cache"
        assert served.render(customer="Ada") == "Hi Ada!"


def test_without_the_stream_each_get_revalidates_with_the_etag(server):
    create(server, "p", "one")
    promote(server, "p", 1)
    with Client(server.base, server.app, stream=False) as client:
        assert client.get("p").source == "server"
        assert client.get("p").source == "revalidated"
        save(server, "p", 1, "two")
        promote(server, "p", 2)
        assert client.get("p").version == 2


def test_an_unreachable_server_serves_the_last_known_version_or_the_fallback(server):
    create(server, "p", "one {{ x }}")
    promote(server, "p", 1)
    client = Client(server.base, server.app, stream=False, timeout=1.0)
    assert client.get("p").version == 1
    server.stop()
    stale = client.get("p")
    assert (stale.version, stale.source) == (1, "stale")
    fallback = client.get("never-fetched", fallback="Hello {{ customer }}")
    assert (fallback.source, fallback.is_fallback) == ("fallback", True)
    assert fallback.render(customer="Ada") == "Hello Ada"
    with pytest.raises(Unavailable):
        client.get("never-fetched")
    client.close()


def test_lockfile_mode_serves_the_locked_versions_and_raises_on_drift(server, tmp_path):
    create(server, "shared/tone", "Kind.")
    promote(server, "shared/tone", 1)
    create(server, "bot", "{% include \"shared/tone@stable\" %} Hi {{ who }}")
    promote(server, "bot", 1)
    lockfile = lock(server, "bot@stable", tmp_path / "prompts.lock")
    save(server, "bot", 1, "changed")
    promote(server, "bot", 2)
    client = Client(server.base, server.app, lockfile=str(lockfile))
    locked = client.get("bot")
    assert (locked.version, locked.source) == (1, "lockfile"), "the locked version, not what stable serves now"
    assert locked.render(who="Ada") == "Kind. Hi Ada"
    with pytest.raises(LockDriftError):
        client.get("bot", label="beta")
    with pytest.raises(LockDriftError):
        client.verify_lock()  # stable moved to 2
    # An include of the locked version moves: the locked version itself drifted.
    save(server, "shared/tone", 1, "Very kind.")
    promote(server, "shared/tone", 2)
    fresh = Client(server.base, server.app, lockfile=str(lockfile))
    with pytest.raises(LockDriftError):
        fresh.get("bot")
    client.close()
    fresh.close()


def test_rollout_units_are_sticky_through_the_client_and_generations_carry_the_arm(server):
    create(server, "r", "base")
    promote(server, "r", 1)
    save(server, "r", 1, "candidate")
    r = server.api("POST", "/api/v1/prompts/r/rollouts", {"label": "stable", "version": 2, "steps": [50, 100], "step_seconds": 3600})
    assert r.status_code == 201, r.text
    with Client(server.base, server.app) as client:
        arms = {}
        for unit in ["user-1", "user-2", "user-3", "user-4", "user-5", "user-6"]:
            p = client.get("r", unit=unit)
            arms[unit] = (p.version, p.rollout["arm"])
            assert client.get("r", unit=unit).version == p.version, "sticky"
        assert {a for _, a in arms.values()} <= {"base", "candidate"}
        p = client.get("r", unit="user-1")
        with client.generation(p, model="local/m", id="req-1") as g:
            g.fields["output"] = "hi"
        assert client.flush()
    got = server.api("GET", "/api/v1/generations/req-1").json()
    assert (got["version"], got["arm"], got["label"]) == (arms["user-1"][0], arms["user-1"][1], "stable")
    assert got["rollout"] == r.json()["id"]
    assert got["hash"] == p.hash


def test_generations_are_sent_in_the_background_and_errors_are_recorded(server):
    create(server, "g", "Hello {{ customer }}")
    promote(server, "g", 1)
    with Client(server.base, server.app) as client:
        p = client.get("g")
        for i in range(25):
            client.generation(p, model="local/m", id=f"batch-{i}").end(output="ok", input_tokens=3, output_tokens=2)
        with pytest.raises(RuntimeError):
            with client.generation(p, id="failed-1"):
                raise RuntimeError("model timed out")
        assert client.flush()
    assert server.api("GET", "/api/v1/generations/batch-24").json()["output_tokens"] == 2
    failed = server.api("GET", "/api/v1/generations/failed-1").json()
    assert failed["status"] == "error" and "model timed out" in failed["error"]


def test_generations_are_bounded_while_the_server_is_down(server):
    create(server, "g", "x")
    promote(server, "g", 1)
    client = Client(server.base, server.app, stream=False, max_pending_generations=10, flush_interval=0.05)
    p = client.get("g")
    server.stop()
    started = time.monotonic()
    for i in range(100):
        client.generation(p, id=f"down-{i}").end()
    assert time.monotonic() - started < 0.5, "never blocks the caller"
    assert client._pending.qsize() <= 10
    assert client.dropped_generations >= 80
    client._closed.set()


@pytest.mark.parametrize(
    "template, variables",
    [
        ("Hello {{ customer }}", {"customer": "Ada"}),
        ("{% if vip %}Dear {{ name|title }}{% else %}Hi{% endif %}, {{ items|length }} items", {"vip": True, "name": "ada lovelace", "items": [1, 2]}),
        ("{% for o in orders %}#{{ o }}{% if not loop.last %}, {% endif %}{% endfor %}", {"orders": [1, 2, 3]}),
        ("{% set greeting = 'Hi' %}{{ greeting }} {{ who | upper }}\n", {"who": "bob"}),
        ("  {%- if x %} yes {% endif -%}  !", {"x": True}),
        ("{{ price * 2 }} {{ a ~ '-' ~ b }} {{ name ~ '!' }}", {"price": 3, "a": "x", "b": "y", "name": "Z"}),
        ("{{ text | replace('a', 'b') | trim }}", {"text": "  banana "}),
        # Lists and maps print as minijinja prints them, and maps iterate in key order.
        ("{{ tags }} {{ meta }} {{ empty }}", {"tags": ["a", 'q"x', "é\n"], "meta": {"b": 1, "a": [1, 2.5, True, None]}, "empty": []}),
        ("{% for k in d %}{{ k }}={{ d[k] }},{% endfor %} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %} {{ d|dictsort }}", {"d": {"b": 1, "a": 2}}),
    ],
)
def test_local_rendering_matches_the_servers(server, template, variables):
    create(server, "t", template)
    with Client(server.base, server.app, stream=False) as client:
        local = client.get("t", label="latest").render(**variables)
    remote = server.api("POST", "/api/v1/prompts/t/render", {"label": "latest", "variables": variables}).json()["text"]
    assert local == remote


def test_local_rendering_is_strict(server):
    create(server, "s", "Hi {{ a }} {{ b }}")
    with Client(server.base, server.app, stream=False) as client:
        p = client.get("s", label="latest")
    with pytest.raises(RenderError, match="missing variables: b"):
        p.render(a="1")
    with pytest.raises(RenderError, match="unknown variables"):
        p.render(a="1", b="2", c="3")
    assert p.render(a="1", b="2", c="3", allow_unknown=True) == "Hi 1 2"


def test_chat_placeholders_render_locally_as_on_the_server(server):
    messages = [
        {"role": "system", "content": "You help {{ company }}."},
        {"role": "placeholder", "content": "history"},
        {"role": "user", "content": "{{ question }}"},
    ]
    r = server.api("POST", "/api/v1/prompts", {"name": "c", "type": "chat", "messages": messages})
    assert r.status_code == 201, r.text
    variables = {"company": "Acme", "question": "And now?", "history": [{"role": "user", "content": "Hi {{ x }}"}]}
    with Client(server.base, server.app, stream=False) as client:
        local = client.get("c", label="latest").render(**variables)
        with pytest.raises(RenderError, match="placeholder"):
            client.get("c", label="latest").render(**{**variables, "history": "not a list"})
    remote = server.api("POST", "/api/v1/prompts/c/render", {"label": "latest", "variables": variables}).json()["messages"]
    assert local == remote
    assert [m["role"] for m in local] == ["system", "user", "user"]


def test_the_cache_is_bounded(server):
    create(server, "b", "x")
    promote(server, "b", 1)
    with Client(server.base, server.app, stream=False, max_cached=3) as client:
        for i in range(10):
            assert client.get("b", unit=f"user-{i}").version == 1
        assert len(client._cache) == 3
