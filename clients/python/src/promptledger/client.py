"""The client. One `Client` per process: thread-safe, with two background threads (the
event stream and the generation sender) that never block the caller."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple, Union

import httpx
from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class PromptledgerError(Exception):
    """Any error of this client."""


class Unavailable(PromptledgerError):
    """The server cannot be reached and nothing is known to serve instead."""


class LockDriftError(PromptledgerError):
    """In lockfile mode, what the server serves for a locked ref is not what was locked."""


class RenderError(PromptledgerError):
    """A template that does not render with the variables given (missing, unknown...)."""


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


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
        try:
            if self.type == "chat":
                out: List[Dict[str, str]] = []
                for m in self.messages or []:
                    if m["role"] == "placeholder":
                        out.extend(_placeholder(m["content"], variables.get(m["content"])))
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
    ) -> None:
        import os

        self.base_url = (base_url or os.environ.get("PROMPTLEDGER_URL") or "http://127.0.0.1:3000").rstrip("/")
        key = api_key or os.environ.get("PROMPTLEDGER_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._headers = headers
        self._timeout = timeout
        self._cache: Dict[Key, _Entry] = {}
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream_up = threading.Event()
        self._last_event_id: Optional[int] = None
        self._lock_entries: Optional[Dict[str, Dict[str, Any]]] = None
        if lockfile:
            with open(lockfile, encoding="utf-8") as f:
                locked = json.load(f)
            self._lock_entries = {f"{p['name']}@{p['ref']}": p for p in locked["prompts"]}
        # Generations: a bounded queue drained by one thread, in batches, with retries.
        self._pending: "queue.Queue[Dict[str, Any]]" = queue.Queue(maxsize=max_pending_generations)
        self.dropped_generations = 0
        self._batch = generation_batch
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
            return self._locked(name, label, version)
        label = None if version is not None else (label or "stable")
        key: Key = (name, label, version, unit)
        entry = self._cache.get(key)
        if entry is not None and (self._stream_up.is_set() or version is not None):
            return entry.prompt
        try:
            return self._fetch(key, entry)
        except (httpx.TransportError, _ServerError):
            if entry is not None:
                return entry.prompt.with_source("stale")
            if fallback is not None:
                return _fallback(name, label, fallback)
            raise Unavailable(f"promptledger at {self.base_url} cannot be reached and '{name}' is not cached")

    def _fetch(self, key: Key, entry: Optional[_Entry]) -> Prompt:
        name, label, version, unit = key
        params: Dict[str, Any] = {}
        if version is not None:
            params["version"] = version
        else:
            params["label"] = label
        if unit is not None:
            params["unit"] = unit
        headers = {"if-none-match": entry.etag} if entry is not None else {}
        r = self._http.get(f"/api/v1/prompts/{_enc(name)}", params=params, headers=headers)
        if r.status_code == 304 and entry is not None:
            return entry.prompt.with_source("revalidated")
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

    def _locked(self, name: str, label: Optional[str], version: Optional[int]) -> Prompt:
        ref = f"{name}@{version if version is not None else (label or 'stable')}"
        assert self._lock_entries is not None
        locked = self._lock_entries.get(ref)
        if locked is None:
            raise LockDriftError(f"'{ref}' is not in the lockfile: lock it (promptledger lock {ref}) to use it")
        key: Key = (name, None, int(locked["version"]), None)
        entry = self._cache.get(key)
        prompt = entry.prompt if entry is not None else self._fetch(key, None)
        if prompt.resolved_hash != locked["resolved_hash"]:
            raise LockDriftError(
                f"'{ref}' was locked at version {locked['version']} with {locked['resolved_hash']}; "
                f"version {prompt.version} now serves {prompt.resolved_hash} (an include moved)"
            )
        return prompt.with_source("lockfile")

    def verify_lock(self) -> None:
        """Raises `LockDriftError` naming every locked ref that resolves differently now."""
        assert self._lock_entries is not None, "not in lockfile mode"
        r = self._http.post("/api/v1/lock", json={"refs": list(self._lock_entries)})
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
                    self._stream_up.set()
                    delay = 0.2
                    # Whatever changed while the stream was down is revalidated.
                    self._refresh(lambda key: True)
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
            self._stream_up.clear()
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
        data = json.loads(event["data"])
        prompt = data.get("prompt")
        # A rollout changes which version units get: every entry of the prompt.
        self._refresh(lambda key: key[0] == prompt and (key[1] is not None))

    def _refresh(self, which) -> None:
        with self._lock:
            keys = [k for k in self._cache if k[2] is None and which(k)]
        for key in keys:
            try:
                self._fetch(key, self._cache.get(key))
            except Exception:  # noqa: BLE001 - kept as is; the next get revalidates
                with self._lock:
                    self._cache.pop(key, None)

    # ------------------------------------------------------------------ generations

    def generation(self, prompt: Prompt, *, model: Optional[str] = None, id: Optional[str] = None, **fields: Any) -> "Generation":
        """A generation of `prompt`: use it as a context manager (latency and status are
        measured) or call `.end(...)`. Sent in the background with the served version,
        hash, label, rollout and arm filled in."""
        return Generation(self, prompt, model=model, id=id or uuid.uuid4().hex, fields=fields)

    def _enqueue(self, item: Dict[str, Any]) -> None:
        try:
            self._pending.put_nowait(item)
        except queue.Full:
            # Bounded: the oldest goes, the newest is kept, and the loss is counted.
            try:
                self._pending.get_nowait()
                self.dropped_generations += 1
            except queue.Empty:
                pass
            self._pending.put_nowait(item)

    def _send_loop(self) -> None:
        batch: List[Dict[str, Any]] = []
        attempt = 0
        while True:
            if not batch:
                try:
                    batch.append(self._pending.get(timeout=self._flush_interval))
                except queue.Empty:
                    if self._closed.is_set():
                        return
                    continue
                while len(batch) < self._batch:
                    try:
                        batch.append(self._pending.get_nowait())
                    except queue.Empty:
                        break
            try:
                r = self._http.post("/api/v1/generations", json={"items": batch})
                if r.status_code < 500 and r.status_code != 429:
                    batch, attempt = [], 0  # accepted, or refused for good (a 4xx never succeeds on retry)
                    continue
            except httpx.TransportError:
                pass
            if self._closed.is_set() and attempt >= 3:
                return
            attempt += 1
            self._closed.wait(min(0.2 * 2**attempt, 10.0))

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every generation queued so far is sent; whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pending.empty():
                time.sleep(self._flush_interval / 10 + 0.05)
                if self._pending.empty():
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Sends what is queued (for a few seconds at most) and stops the threads."""
        self.flush(timeout=5.0)
        self._closed.set()
        self._sender.join(timeout=5.0)
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


def _enc(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _message(r: httpx.Response) -> str:
    try:
        return f"{r.status_code}: {r.json()['error']['message']}"
    except Exception:  # noqa: BLE001
        return f"{r.status_code}: {r.text}"


def _fallback(name: str, label: Optional[str], fallback: Union[str, List[Dict[str, str]]]) -> Prompt:
    import re

    texts = [fallback] if isinstance(fallback, str) else [m["content"] for m in fallback]
    variables = sorted({v for t in texts for v in re.findall(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}", t)})
    return Prompt(
        name=name,
        version=0,
        hash="",
        resolved_hash="",
        type="text" if isinstance(fallback, str) else "chat",
        template=fallback if isinstance(fallback, str) else None,
        messages=None if isinstance(fallback, str) else list(fallback),
        config={},
        variables=variables,
        labels=[],
        label=label,
        source="fallback",
    )
