"""The client. One `Client` per process: thread-safe, with two background threads (the
event stream and the generation sender) that never block the caller."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple, Union

import httpx
from jinja2 import StrictUndefined, TemplateError, UndefinedError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment


class PromptledgerError(Exception):
    """Any error of this client."""


class Unavailable(PromptledgerError):
    """The server cannot be reached and nothing is known to serve instead."""


class LockDriftError(PromptledgerError):
    """In lockfile mode, what the server serves for a locked ref is not what was locked."""


class RenderError(PromptledgerError):
    """A template that does not render with the variables given (missing, unknown...)."""


#: What one generations request may carry (the server takes 1,000 items or 5 MiB).
_MAX_BATCH_ITEMS = 1000
_MAX_BATCH_BYTES = 4 * 1024 * 1024


def _debug_str(s: str) -> str:
    """A string as minijinja prints it inside a list or map (Rust's `{:?}`)."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _debug(value: Any) -> str:
    if isinstance(value, str):
        return _debug_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_debug(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_debug(k)}: {_debug(v)}" for k, v in value.items()) + "}"
    return str(value)


def _finalize(value: Any) -> Any:
    """`{{ list }}` and `{{ map }}` print as minijinja prints them (`["a", "b"]`), not
    as Python's repr (`['a', 'b']`)."""
    if isinstance(value, (list, tuple, dict)):
        return _debug(value)
    return value


def _as_server_sees(value: Any) -> Any:
    """A variable as the server holds it after JSON: maps iterate in key order."""
    if isinstance(value, dict):
        try:
            items = sorted(value.items(), key=lambda kv: kv[0])
        except TypeError:
            items = list(value.items())
        return {k: _as_server_sees(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_as_server_sees(v) for v in value]
    return value


_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
)


@dataclass(frozen=True)
class Prompt:
    """A version as the registry serves it: the composed text (includes inlined)."""

    name: str
    version: int
    hash: str
    resolved_hash: str
    type: str
    template: Optional[str]
    messages: Optional[List[Dict[str, str]]]
    config: Dict[str, Any]
    variables: List[str]
    labels: List[str]
    label: Optional[str] = None
    rollout: Optional[Dict[str, Any]] = None
    #: `server` (fetched now), `cache` (kept fresh by the stream), `revalidated` (ETag
    #: check), `stale` (the server is unreachable: the last known version), `fallback`
    #: (the caller's fallback) or `lockfile`.
    source: str = "server"

    @property
    def is_fallback(self) -> bool:
        return self.source == "fallback"

    def render(self, allow_unknown: bool = False, **variables: Any) -> Union[str, List[Dict[str, str]]]:
        """Renders strictly, as the server does: every variable the prompt uses must be
        given and (unless `allow_unknown`) no other."""
        used = set(self.variables)
        missing = sorted(used - variables.keys())
        unknown = [] if allow_unknown else sorted(variables.keys() - used)
        if missing or unknown:
            parts = []
            if missing:
                parts.append("missing variables: " + ", ".join(missing))
            if unknown:
                parts.append("unknown variables (the template does not use them): " + ", ".join(unknown))
            raise RenderError("; ".join(parts))
        given = variables
        variables = {k: _as_server_sees(v) for k, v in variables.items()}
        try:
            if self.type == "chat":
                out: List[Dict[str, str]] = []
                for m in self.messages or []:
                    if m["role"] == "placeholder":
                        out.extend(_placeholder(m["content"], given.get(m["content"])))
                    else:
                        out.append({"role": m["role"], "content": _ENV.from_string(m["content"]).render(**variables)})
                return out
            return _ENV.from_string(self.template or "").render(**variables)
        except (UndefinedError, TemplateError) as e:
            raise RenderError(f"the template could not be rendered: {e}") from e

    @classmethod
    def from_json(cls, body: Dict[str, Any], label: Optional[str], source: str) -> "Prompt":
        return cls(
            name=body["name"],
            version=int(body["version"]),
            hash=body["hash"],
            resolved_hash=body.get("resolved_hash") or body["hash"],
            type=body["type"],
            template=body.get("template"),
            messages=body.get("messages"),
            config=body.get("config") or {},
            variables=list(body.get("variables") or []),
            labels=list(body.get("labels") or []),
            label=label,
            rollout=body.get("rollout"),
            source=source,
        )

    def with_source(self, source: str) -> "Prompt":
        return Prompt(**{**self.__dict__, "source": source})


Key = Tuple[str, Optional[str], Optional[int], Optional[str]]


@dataclass
class _Entry:
    prompt: Prompt
    etag: str


class Client:
    """Prompts by name from a promptledger server.

    `get` answers from memory: the first call for a prompt fetches it, and the server's
    event stream (`/api/v1/events`) refreshes it the moment it changes (no TTL). While
    the stream is down, each `get` revalidates with the ETag; while the server is
    unreachable, `get` serves the last version it had (`source="stale"`) or the caller's
    `fallback`. With `lockfile=`, only the locked versions are served and a ref that no
    longer matches its lock raises `LockDriftError`.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        lockfile: Optional[str] = None,
        stream: bool = True,
        timeout: float = 5.0,
        max_pending_generations: int = 10_000,
        max_cached: int = 10_000,
        generation_batch: int = 200,
        flush_interval: float = 1.0,
        retry_after: float = 5.0,
    ) -> None:
        import os

        self.base_url = (base_url or os.environ.get("PROMPTLEDGER_URL") or "http://127.0.0.1:3000").rstrip("/")
        key = api_key or os.environ.get("PROMPTLEDGER_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._headers = headers
        self._timeout = timeout
        #: after a failed request, `get`s that can answer without the server (a stale
        #: copy, a fallback) do so until this moment instead of waiting on it again
        self._retry_after = retry_after
        self._quiet_until = 0.0
        self._cache: Dict[Key, _Entry] = {}
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream_up = threading.Event()
        self._stream_response: Optional[httpx.Response] = None
        self._last_event_id: Optional[int] = None
        #: events seen per prompt: a fetch that overlapped one fetches again
        self._event_seq: Dict[str, int] = {}
        self._lock_entries: Optional[Dict[str, Dict[str, Any]]] = None
        if lockfile:
            with open(lockfile, encoding="utf-8") as f:
                locked = json.load(f)
            self._lock_entries = {f"{p['name']}@{p['ref']}": p for p in locked["prompts"]}
        # Generations: a bounded queue drained by one thread, in batches, with retries.
        # Items are JSON text, serialised when queued. Every item queued is settled once:
        # sent, or dropped and counted in `dropped_generations`.
        self._pending: "queue.Queue[Optional[str]]" = queue.Queue(maxsize=max_pending_generations)
        self._gen_cond = threading.Condition(threading.Lock())
        self.dropped_generations = 0
        self._enqueued = 0
        self._settled = 0
        self._closing = threading.Event()
        self._close_deadline: Optional[float] = None
        self._abandoned = False
        self._batch = max(1, min(generation_batch, _MAX_BATCH_ITEMS))
        self._flush_interval = flush_interval
        self._sender = threading.Thread(target=self._send_loop, name="promptledger-generations", daemon=True)
        self._sender.start()
        self._streamer: Optional[threading.Thread] = None
        if stream and self._lock_entries is None:
            self._streamer = threading.Thread(target=self._stream_loop, name="promptledger-events", daemon=True)
            self._streamer.start()

    # ------------------------------------------------------------------ prompts

    @property
    def stream_connected(self) -> bool:
        """Whether the event stream is up (then `get` never asks the server for a prompt it has)."""
        return self._stream_up.is_set()

    def get(
        self,
        name: str,
        *,
        label: Optional[str] = None,
        version: Optional[int] = None,
        unit: Optional[str] = None,
        fallback: Optional[Union[str, List[Dict[str, str]]]] = None,
    ) -> Prompt:
        """The version of `name` that `label` (default `stable`) or `version` names."""
        if label is not None and version is not None:
            raise ValueError("give either a label or a version, not both")
        if self._lock_entries is not None:
            return self._locked(name, label, version, fallback)
        label = None if version is not None else (label or "stable")
        key: Key = (name, label, version, unit)
        entry = self._cache.get(key)
        if entry is not None and self._stream_up.is_set():
            return entry.prompt
        if time.monotonic() >= self._quiet_until or (entry is None and fallback is None):
            try:
                prompt = self._fetch(key, entry)
                self._quiet_until = 0.0
                return prompt
            except (httpx.HTTPError, _ServerError):
                # Unreachable, hung or failing: for a while, what can be answered without
                # it is, at once (a hung server would hold every call for the timeout).
                self._quiet_until = time.monotonic() + self._retry_after
        entry = self._cache.get(key) or entry
        if entry is not None:
            return entry.prompt.with_source("stale")
        if fallback is not None:
            return _fallback(name, label, fallback)
        raise Unavailable(f"promptledger at {self.base_url} cannot be reached and '{name}' is not cached")

    def _fetch(self, key: Key, entry: Optional[_Entry]) -> Prompt:
        """Fetches `key` (revalidating `entry` with its ETag when given) and caches it. An
        event for the prompt that arrives while the request is in flight may concern a
        change the answer predates: then it is fetched again."""
        name = key[0]
        for _ in range(5):
            with self._lock:
                seen = self._event_seq.get(name, 0)
            prompt = self._fetch_once(key, entry)
            with self._lock:
                if self._event_seq.get(name, 0) == seen:
                    return prompt
            entry = None
        return prompt

    def _fetch_once(self, key: Key, entry: Optional[_Entry]) -> Prompt:
        name, label, version, unit = key
        params: Dict[str, Any] = {}
        if version is not None:
            params["version"] = version
        else:
            params["label"] = label
        if unit is not None:
            params["unit"] = unit
        path = f"/api/v1/prompts/{_enc(name)}"
        headers = {"if-none-match": entry.etag} if entry is not None and entry.etag else {}
        r = self._http.get(path, params=params, headers=headers)
        if r.status_code == 304 and entry is not None:
            # The content is unchanged, but a 304 does not carry the rollout: keep the
            # entry only when the arm the server reports is the one cached.
            if r.headers.get("x-promptledger-arm") == (entry.prompt.rollout or {}).get("arm"):
                return entry.prompt.with_source("revalidated")
            r = self._http.get(path, params=params)
        if r.status_code == 404:
            raise _NotFound(_message(r))
        if r.status_code >= 500:
            raise _ServerError(r.text)
        if r.status_code != 200:
            raise PromptledgerError(_message(r))
        prompt = Prompt.from_json(r.json(), label, "server")
        with self._lock:
            self._cache.pop(key, None)
            self._cache[key] = _Entry(prompt.with_source("cache"), r.headers.get("etag", ""))
            # Bounded (one entry per unit under a rollout): the longest unrefreshed goes.
            while len(self._cache) > self._max_cached:
                del self._cache[next(iter(self._cache))]
        return prompt

    def _locked(
        self,
        name: str,
        label: Optional[str],
        version: Optional[int],
        fallback: Optional[Union[str, List[Dict[str, str]]]] = None,
    ) -> Prompt:
        ref = f"{name}@{version if version is not None else (label or 'stable')}"
        assert self._lock_entries is not None
        locked = self._lock_entries.get(ref)
        if locked is None:
            raise LockDriftError(f"'{ref}' is not in the lockfile: lock it (promptledger lock {ref}) to use it")
        key: Key = (name, None, int(locked["version"]), None)
        entry = self._cache.get(key)
        if entry is not None:
            prompt = entry.prompt
        else:
            try:
                prompt = self._fetch(key, None)
            except (httpx.HTTPError, _ServerError):
                if fallback is not None:
                    return _fallback(name, None if version is not None else (label or "stable"), fallback)
                raise Unavailable(f"promptledger at {self.base_url} cannot be reached and '{ref}' is not cached") from None
        if prompt.resolved_hash != locked["resolved_hash"]:
            raise LockDriftError(
                f"'{ref}' was locked at version {locked['version']} with {locked['resolved_hash']}; "
                f"version {prompt.version} now serves {prompt.resolved_hash} (an include moved)"
            )
        return prompt.with_source("lockfile")

    def verify_lock(self) -> None:
        """Raises `LockDriftError` naming every locked ref that resolves differently now
        (`Unavailable` when the server cannot be reached)."""
        assert self._lock_entries is not None, "not in lockfile mode"
        try:
            r = self._http.post("/api/v1/lock", json={"refs": list(self._lock_entries)})
        except httpx.HTTPError as e:
            raise Unavailable(f"promptledger at {self.base_url} cannot be reached: {e}") from None
        if r.status_code >= 500:
            raise Unavailable(f"promptledger at {self.base_url} failed: {_message(r)}")
        if r.status_code != 200:
            raise PromptledgerError(_message(r))
        moved = []
        for now in r.json()["prompts"]:
            ref = "{}@{}".format(now["name"], now["ref"])
            was = self._lock_entries[ref]
            if now["resolved_hash"] != was["resolved_hash"]:
                moved.append("{}: version {} -> {}".format(ref, was["version"], now["version"]))
        if moved:
            raise LockDriftError("moved since the lockfile was written: " + "; ".join(moved))

    # ------------------------------------------------------------------ the event stream

    def _stream_loop(self) -> None:
        delay = 0.2
        while not self._closed.is_set():
            try:
                headers = dict(self._headers)
                if self._last_event_id is not None:
                    headers["last-event-id"] = str(self._last_event_id)
                timeout = httpx.Timeout(self._timeout, read=60.0)
                with httpx.stream("GET", f"{self.base_url}/api/v1/events", headers=headers, timeout=timeout) as r:
                    if r.status_code != 200:
                        raise _ServerError(r.status_code)
                    with self._lock:
                        self._stream_response = r
                    if self._closed.is_set():
                        return
                    # Whatever changed while the stream was down is revalidated; until
                    # that is done, `get` revalidates too (the cache may be stale).
                    self._refresh(lambda key: True, conditional=lambda key: True)
                    if self._closed.is_set():
                        return
                    self._stream_up.set()
                    delay = 0.2
                    event: Dict[str, str] = {}
                    for line in r.iter_lines():
                        if self._closed.is_set():
                            return
                        if line == "":
                            self._on_event(event)
                            event = {}
                        elif not line.startswith(":") and ":" in line:
                            k, v = line.split(":", 1)
                            event[k] = v[1:] if v.startswith(" ") else v
            except Exception:  # noqa: BLE001 - any failure: reconnect after a pause
                pass
            finally:
                self._stream_up.clear()
                with self._lock:
                    self._stream_response = None
            self._closed.wait(delay)
            delay = min(delay * 2, 5.0)

    def _on_event(self, event: Dict[str, str]) -> None:
        if "data" not in event:
            return
        if "id" in event:
            try:
                self._last_event_id = int(event["id"])
            except ValueError:
                pass
        prompt = json.loads(event["data"]).get("prompt")
        if not prompt:
            return
        with self._lock:
            # A fetch of this prompt in flight now may have been answered before the
            # change: it sees the count move and fetches again.
            self._event_seq[prompt] = self._event_seq.get(prompt, 0) + 1
        # Every entry of the prompt: a label move or a rollout changes what labels and
        # units get, and an include's label move changes what a pinned version composes.
        # Label entries are fetched in full (a 304 would not carry the rollout and arm).
        self._refresh(lambda key: key[0] == prompt, conditional=lambda key: key[2] is not None)

    def _refresh(self, which, conditional) -> None:
        with self._lock:
            keys = [k for k in self._cache if which(k)]
        for key in keys:
            if self._closed.is_set():
                return
            entry = self._cache.get(key)
            if entry is None:
                continue  # evicted meanwhile
            try:
                self._fetch(key, entry if conditional(key) else None)
            except _NotFound:
                with self._lock:
                    self._cache.pop(key, None)
            except Exception:  # noqa: BLE001 - kept: the stale copy still serves an outage
                pass

    def _stop_stream(self) -> None:
        with self._lock:
            r = self._stream_response
        if r is not None:
            # Wakes the stream thread out of its blocking read at once (closing the socket
            # alone does not interrupt a read in another thread).
            try:
                stream = r.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except Exception:  # noqa: BLE001
                pass
        if self._streamer is not None and self._streamer is not threading.current_thread():
            self._streamer.join(timeout=self._timeout + 1.0)

    # ------------------------------------------------------------------ generations

    def generation(self, prompt: Prompt, *, model: Optional[str] = None, id: Optional[str] = None, **fields: Any) -> "Generation":
        """A generation of `prompt`: use it as a context manager (latency and status are
        measured) or call `.end(...)`. Sent in the background with the served version,
        hash, label, rollout and arm filled in."""
        return Generation(self, prompt, model=model, id=id or uuid.uuid4().hex, fields=fields)

    def _enqueue(self, item: Dict[str, Any]) -> None:
        """Never blocks and never raises: a generation that cannot be sent (not JSON, or
        the client is closed) is counted in `dropped_generations`."""
        try:
            body = json.dumps(item, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            with self._gen_cond:
                self.dropped_generations += 1
            return
        with self._gen_cond:
            if self._closing.is_set():
                self.dropped_generations += 1
                return
            self._enqueued += 1
            # Only producers put, all under this lock: after one get, the put fits.
            while True:
                try:
                    self._pending.put_nowait(body)
                    return
                except queue.Full:
                    # Bounded: the oldest goes, the newest is kept, and the loss is counted.
                    try:
                        self._pending.get_nowait()
                        self.dropped_generations += 1
                        self._settled += 1
                        self._gen_cond.notify_all()
                    except queue.Empty:
                        pass

    def _settle(self, sent: int, dropped: int) -> None:
        with self._gen_cond:
            if self._abandoned:
                return  # close() gave up on them and counted them already
            self.dropped_generations += dropped
            self._settled += sent + dropped
            self._gen_cond.notify_all()

    def _close_remaining(self) -> Optional[float]:
        if self._close_deadline is None:
            return None
        return self._close_deadline - time.monotonic()

    def _send_loop(self) -> None:
        carry: List[str] = []  # taken out of the queue, neither sent nor dropped yet
        attempt = 0
        limit = self._batch
        while True:
            try:
                if not carry:
                    try:
                        item = self._pending.get(timeout=self._flush_interval)
                    except queue.Empty:
                        item = None
                    if item is None:  # idle, or close()'s wake-up
                        if self._closing.is_set() and self._pending.empty():
                            return
                        continue
                    carry.append(item)
                while len(carry) < self._batch:
                    try:
                        item = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        carry.append(item)
                remaining = self._close_remaining()
                if remaining is not None and remaining <= 0:
                    self._give_up(carry)
                    return
                batch: List[str] = []
                size = 0
                for body in carry:
                    if batch and (len(batch) >= limit or size + len(body) + 1 > _MAX_BATCH_BYTES):
                        break
                    batch.append(body)
                    size += len(body) + 1
                outcome = self._post(batch, remaining)
                if outcome == "sent":
                    self._settle(len(batch), 0)
                    del carry[: len(batch)]
                    attempt, limit = 0, min(self._batch, limit * 2)
                elif outcome == "too_large":
                    if len(batch) == 1:
                        self._settle(0, 1)  # larger than any request may be
                        del carry[0]
                    else:
                        limit = max(1, len(batch) // 2)
                elif isinstance(outcome, int):
                    self._settle(0, 1)  # the one item the server refused; the rest is retried
                    del carry[outcome]
                elif outcome == "refused":
                    self._settle(0, len(batch))  # refused for good: a retry never succeeds
                    del carry[: len(batch)]
                else:  # "retry": unreachable, 5xx, 429
                    attempt += 1
                    pause = min(0.2 * 2**attempt, 10.0)
                    remaining = self._close_remaining()
                    if remaining is not None:
                        time.sleep(max(0.0, min(pause, remaining, 0.5)))
                    else:
                        self._closing.wait(pause)
            except Exception:  # noqa: BLE001 - the sender never dies
                time.sleep(0.1)

    def _post(self, batch: List[str], remaining: Optional[float]) -> Union[str, int]:
        body = '{"items":[' + ",".join(batch) + "]}"
        timeout = self._timeout if remaining is None else max(0.05, min(self._timeout, remaining))
        try:
            r = self._http.post(
                "/api/v1/generations",
                content=body.encode("utf-8"),
                headers={"content-type": "application/json"},
                timeout=timeout,
            )
        except Exception:  # noqa: BLE001 - transport errors, or the client closed under us
            return "retry"
        if 200 <= r.status_code < 300:
            return "sent"
        if r.status_code == 413:
            return "too_large"
        if r.status_code == 422:
            try:
                index = r.json()["error"].get("index")
            except Exception:  # noqa: BLE001
                index = None
            if isinstance(index, int) and 0 <= index < len(batch):
                return index
            # The batch as a whole (too many items): smaller batches; one item alone is refused.
            return "too_large"
        if r.status_code in (408, 429) or r.status_code >= 500:
            return "retry"
        return "refused"

    def _give_up(self, carry: List[str]) -> None:
        lost = len(carry)
        carry.clear()
        while True:
            try:
                if self._pending.get_nowait() is not None:
                    lost += 1
            except queue.Empty:
                break
        self._settle(0, lost)

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every generation queued so far is sent (or dropped); whether all of
        them were sent (a drop is counted in `dropped_generations`)."""
        deadline = time.monotonic() + timeout
        with self._gen_cond:
            target = self._enqueued
            dropped = self.dropped_generations
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._gen_cond.wait(remaining)
            return self.dropped_generations == dropped

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued, retrying for `timeout` seconds at most, counts what could
        not be sent in `dropped_generations`, and stops both threads."""
        with self._gen_cond:
            if self._closing.is_set():
                return
            self._close_deadline = time.monotonic() + timeout
            self._closing.set()
            try:
                self._pending.put_nowait(None)  # wakes an idle sender
            except queue.Full:
                pass
        self._closed.set()
        self._stop_stream()
        remaining = self._close_remaining() or 0.0
        self._sender.join(timeout=max(0.0, remaining) + 0.5)
        with self._gen_cond:
            if self._sender.is_alive():
                # Stuck in a request to a server that does not answer: what it holds is lost.
                self.dropped_generations += self._enqueued - self._settled
                self._settled = self._enqueued
                self._abandoned = True
                self._gen_cond.notify_all()
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Generation:
    """One model call made with a prompt; sent when it ends."""

    client: Client
    prompt: Prompt
    model: Optional[str]
    id: str
    fields: Dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"))
    _ended: bool = False

    def end(self, *, status: str = "ok", error: Optional[str] = None, **fields: Any) -> None:
        if self._ended:
            return
        self._ended = True
        p = self.prompt
        item: Dict[str, Any] = {
            "id": self.id,
            "prompt": p.name,
            "version": p.version,
            "hash": p.hash,
            "started_at": self.started_at,
            "status": status,
            "latency_ms": round((time.monotonic() - self.started) * 1000.0, 3),
        }
        if p.label and p.source != "fallback":
            item["label"] = p.label
        if p.rollout:
            item["rollout"] = p.rollout.get("id")
            item["arm"] = p.rollout.get("arm")
        if self.model:
            item["model"] = self.model
        if error is not None:
            item["error"] = error
        item.update(self.fields)
        item.update(fields)
        if p.source != "fallback":
            self.client._enqueue(item)

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.end(status="error", error=f"{exc_type.__name__}: {exc}")
        else:
            self.end()


def _placeholder(name: str, value: Any) -> List[Dict[str, str]]:
    """The messages given for a placeholder, put in as they are (they are not templates)."""
    ok = isinstance(value, list) and all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        for m in value
    )
    if not ok:
        raise RenderError(f"the placeholder '{name}' needs a list of messages, each {{'role': 'user'|'assistant'|'system', 'content': '...'}}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


class _ServerError(Exception):
    pass


class _NotFound(PromptledgerError):
    """404: the prompt, version or label is not (or no longer) there."""


def _enc(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _message(r: httpx.Response) -> str:
    try:
        return f"{r.status_code}: {r.json()['error']['message']}"
    except Exception:  # noqa: BLE001
        return f"{r.status_code}: {r.text}"


def _fallback(name: str, label: Optional[str], fallback: Union[str, List[Dict[str, str]]]) -> Prompt:
    if isinstance(fallback, str):
        texts = [fallback]
        variables = set()
    else:
        texts = [m["content"] for m in fallback if m.get("role") != "placeholder"]
        variables = {m["content"] for m in fallback if m.get("role") == "placeholder"}
    try:
        for t in texts:
            variables |= meta.find_undeclared_variables(_ENV.parse(t))
    except TemplateError as e:
        raise RenderError(f"the fallback for '{name}' is not a valid template: {e}") from e
    return Prompt(
        name=name,
        version=0,
        hash="",
        resolved_hash="",
        type="text" if isinstance(fallback, str) else "chat",
        template=fallback if isinstance(fallback, str) else None,
        messages=None if isinstance(fallback, str) else list(fallback),
        config={},
        variables=sorted(variables),
        labels=[],
        label=label,
        source="fallback",
    )
