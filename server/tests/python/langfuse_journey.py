"""The published `langfuse` SDK against promptledger's Langfuse-compatible API.

Run by `server/tests/langfuse.rs` with the SDK installed from PyPI (scripts/test.sh
makes the virtualenv). Environment: PL_HOST (the server), PL_KEY (an API key). Prints
one JSON line of findings the Rust test checks against the server itself.
"""

import json
import os

from langfuse import Langfuse

lf = Langfuse(public_key="pk-any", secret_key=os.environ["PL_KEY"], base_url=os.environ["PL_HOST"], tracing_enabled=False)
out = {"auth": lf.auth_check()}

# create (text), get by label and by version, compile.
created = lf.create_prompt(
    name="sdk/greeting",
    prompt="Hello {{customer}}, how can we help?",
    labels=["production"],
    tags=["sdk"],
    config={"model": "gpt-4o-mini", "temperature": 0.2},
    commit_message="first draft",
)
out["created"] = {"version": created.version, "labels": created.labels, "config": created.config}
second = lf.create_prompt(name="sdk/greeting", prompt="Hi {{customer}}! What can we do for you?", labels=["staging"])
out["second"] = {"version": second.version, "labels": second.labels}

prod = lf.get_prompt("sdk/greeting", cache_ttl_seconds=0)
out["production"] = {"version": prod.version, "compiled": prod.compile(customer="Ada"), "is_fallback": prod.is_fallback}
by_version = lf.get_prompt("sdk/greeting", version=2, cache_ttl_seconds=0)
out["by_version"] = {"version": by_version.version, "compiled": by_version.compile(customer="Ada")}
staging = lf.get_prompt("sdk/greeting", label="staging", cache_ttl_seconds=0)
out["staging"] = staging.version

# update_prompt(new_labels=...) promotes version 2 to production.
lf.update_prompt(name="sdk/greeting", version=2, new_labels=["production"])
out["promoted"] = lf.get_prompt("sdk/greeting", cache_ttl_seconds=0).version

# chat prompts
chat = lf.create_prompt(
    name="sdk/chat",
    type="chat",
    prompt=[{"role": "system", "content": "You help {{company}}."}, {"role": "user", "content": "{{question}}"}],
    labels=["production"],
    tags=["sdk"],
)
fetched = lf.get_prompt("sdk/chat", type="chat", cache_ttl_seconds=0)
out["chat"] = {"version": chat.version, "compiled": fetched.compile(company="Acme", question="Where is my parcel?")}

# A chat prompt with a placeholder, filled when compiled.
lf.create_prompt(
    name="sdk/chat-history",
    type="chat",
    prompt=[
        {"role": "system", "content": "You help {{company}}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}"},
    ],
    labels=["production"],
    tags=["sdk"],
)
history = lf.get_prompt("sdk/chat-history", type="chat", cache_ttl_seconds=0)
out["placeholder"] = history.compile(
    company="Acme", question="And now?", history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
)

# A prompt that does not exist: the SDK falls back on the 404.
fallback = lf.get_prompt("sdk/missing", fallback="Fallback for {{customer}}", cache_ttl_seconds=0)
out["fallback"] = {"is_fallback": fallback.is_fallback, "compiled": fallback.compile(customer="Ada")}
try:
    lf.get_prompt("sdk/missing", cache_ttl_seconds=0)
    out["missing_raises"] = False
except Exception as e:  # noqa: BLE001 - any error the SDK raises on a 404
    out["missing_raises"] = type(e).__name__

# Tracing on (OTLP to /api/public/otel/v1/traces): a generation made with a prompt links to
# the prompt's version.
traced = Langfuse(public_key="pk-traced", secret_key=os.environ["PL_KEY"], base_url=os.environ["PL_HOST"], tracing_enabled=True)
used = traced.get_prompt("sdk/greeting", cache_ttl_seconds=0)
with traced.start_as_current_observation(as_type="generation", name="answer", model="gpt-4o-mini", prompt=used) as generation:
    generation.update(output="Hi Ada! What can we do for you?", usage_details={"input": 12, "output": 9})
traced.flush()
out["traced"] = {"version": used.version, "trace_id": generation.trace_id, "id": generation.id}

# An application's key (app scope) gets prompts too.
app = Langfuse(public_key="pk-app", secret_key=os.environ["PL_APP_KEY"], base_url=os.environ["PL_HOST"], tracing_enabled=False)
out["app_key"] = app.get_prompt("sdk/greeting", cache_ttl_seconds=0).compile(customer="Bo")

# The list endpoint.
listed = lf.api.prompts.list(tag="sdk")
out["listed"] = sorted(p.name for p in listed.data)
# With a label, the version it names, with that version's labels and config.
lf.update_prompt(name="sdk/greeting", version=1, new_labels=["legacy"])
legacy = lf.api.prompts.list(name="sdk/greeting", label="legacy").data
out["listed_legacy"] = [{"versions": p.versions, "labels": sorted(p.labels), "config": p.last_config} for p in legacy]
print(json.dumps(out))
