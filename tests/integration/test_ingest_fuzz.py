"""Fuzz: random bytes, random JSON, mutated real payloads and mangled signature headers at every source,
through the real Pipeline.handle with an HTTP event. Never a 5xx, always the JSON error shape for a
refusal, and nothing queued unless the answer says what was queued."""

import base64
import copy
import json
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keap_relay.aws import queue
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.events.errors import BodyUnparseable
from keap_relay.events.kinds import FOLDERS, kind_named
from keap_relay.events.sources import SOURCES, SignedRequest, sign_request, source_spec
from keap_relay.events.sources._bodies import multipart_body

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SECRETS = json.loads((EVENTS / "local-secrets.json").read_text(encoding="utf-8"))
FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _sample(source):
    folder = next(f for f in FOLDERS if (EVENTS / f / f"http-{source}.json").exists())
    sample = json.loads((EVENTS / folder / f"http-{source}.json").read_text(encoding="utf-8"))
    raw = base64.b64decode(sample["body"]) if sample["isBase64Encoded"] else sample["body"].encode()
    return folder, sample["headers"]["content-type"], raw


SAMPLES = {source: _sample(source) for source in SOURCES}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Values that have broken parsers before: wrong types, huge or odd numbers, near-emails, control characters.
nasty = st.sampled_from(
    [
        None,
        "",
        [],
        {},
        0,
        -1,
        10**40,
        1.5,
        1e308,
        True,
        "x" * 1500,
        "ab@",
        "a@b",
        " A@B.CO ",
        "ü@exämple.com",
        "\x00",
        "1e999",
        "NaN",
        "2026-13-45T99:99:99Z",
        "-0",
        ["a@example.com"],
        {"first": 1, "last": None},
    ]
)


class Enqueued:
    """Spy on queue.enqueue that still sends to moto: how many events each request queued."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, url, event):
        self.calls.append(event)
        return self.real(url, event)


@pytest.fixture
def spy(monkeypatch):
    recorder = Enqueued(queue.enqueue)
    monkeypatch.setattr(queue, "enqueue", recorder)
    return recorder


@pytest.fixture
def work_queue(sqs):
    return sqs.create_queue(QueueName=f"fuzz-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def sign(source, body, secret):
    try:
        return sign_request(source, body, secret)
    except BodyUnparseable:  # Mailgun signs inside a JSON body; other bodies go unsigned
        return SignedRequest(body, SOURCES[source].sign(body, secret), {})


def send(
    source, spy, work_queue, body, *, content_type=None, signed=True, headers=None, query=None, method="POST", b64=None
):
    folder, sample_type, _raw = SAMPLES[source]
    request = sign(source, body, SECRETS[source]) if signed else SignedRequest(body, {}, {})
    hdrs = {**request.headers, "content-type": sample_type if content_type is None else content_type, **(headers or {})}
    query = request.query if query is None else query
    b64 = (not hdrs["content-type"].startswith("application/json")) if b64 is None else b64
    event = {
        "version": "2.0",
        "routeKey": f"{method} /{folder}/{{source}}",
        "rawPath": f"/{folder}/{source}",
        "headers": hdrs,
        "queryStringParameters": query,
        "pathParameters": {"source": source},
        "requestContext": {"http": {"method": method, "path": f"/{folder}/{source}"}, "requestId": "fuzz"},
        "body": base64.b64encode(request.body).decode() if b64 else request.body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": b64,
    }
    spy.calls.clear()
    kind = kind_named(folder).name
    settings_ = Settings(
        kind=kind,
        keap_url="http://127.0.0.1:9",
        queue_url=work_queue,
        webhook_secrets_env=json.dumps(SECRETS),
    )
    out = Pipeline(kind, settings_).handle(event)
    check(out, spy)
    return out


def check(out, spy):
    status = out["statusCode"]
    assert status < 500, out
    body = json.loads(out["body"])
    assert not any(secret in out["body"] for secret in SECRETS.values())
    if status >= 400:
        assert set(body) == {"error", "detail"} and isinstance(body["detail"], str) and body["detail"], out
        assert spy.calls == [], out
    elif body.get("status") == "queued":  # 202, or 200 for the vendors that count only 200 as delivered
        assert status in (200, 202) and [e["id"] for e in spy.calls] == body["ids"]
    else:
        assert status == 200 and body["status"] in ("ok", "ignored") and spy.calls == [], out


# -- random input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(
    body=st.binary(max_size=600),
    signed=st.booleans(),
    which_type=st.integers(0, 3),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
)
def test_random_bytes_never_crash_or_queue(source, spy, work_queue, body, signed, which_type, method):
    types = [*source_spec(source).content_types, "text/plain", ""]
    content_type = types[which_type % len(types)]
    if content_type.startswith("multipart/"):
        content_type += "; boundary=xyz"
    send(source, spy, work_queue, body, content_type=content_type, signed=signed, method=method)
    assert spy.calls == []  # nothing a vendor sends looks like random bytes


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(value=json_values)
def test_random_json_signed_correctly_never_crashes(source, spy, work_queue, value):
    send(source, spy, work_queue, json.dumps(value).encode(), content_type="application/json")


# -- mutated real payloads -------------------------------------------------------------------------------
def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


def set_at(doc, path, new):
    if not path:
        return new
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return doc


def mutate_json(data, doc, rounds):
    for _ in range(rounds):
        every = list(paths(doc))[1:] or [()]  # not the root: random JSON has its own test
        path = every[data.draw(st.integers(0, len(every) - 1))]
        doc = set_at(doc, path, copy.deepcopy(data.draw(nasty | json_values)))  # nasty's values are shared
    return doc


def mutate_pairs(data, pairs, rounds):
    for _ in range(rounds):
        index = data.draw(st.integers(0, max(len(pairs) - 1, 0)))
        new = (data.draw(st.text(max_size=20)), data.draw(st.text(max_size=40) | st.sampled_from(["", "true", "a@b"])))
        action = data.draw(st.sampled_from(["value", "pair", "add", "drop"]))
        if not pairs or action == "add":
            pairs.append(new)
        elif action == "drop":
            pairs.pop(index)
        else:
            pairs[index] = (pairs[index][0], new[1]) if action == "value" else new
    return pairs


def mutated_body(data, source):
    _folder, content_type, raw = SAMPLES[source]
    rounds = data.draw(st.integers(1, 3))
    if content_type.startswith("application/json"):
        return json.dumps(mutate_json(data, json.loads(raw), rounds)).encode()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return urlencode(mutate_pairs(data, parse_qsl(raw.decode(), keep_blank_values=True), rounds)).encode()
    fields = multipart_body({"content-type": content_type}, raw)  # Jotform: mutate the answers inside
    fields["rawRequest"] = json.dumps(mutate_json(data, json.loads(fields["rawRequest"]), rounds))
    boundary = content_type.split("boundary=", 1)[1]
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(data=st.data())
def test_mutated_real_payloads_are_queued_or_refused_never_crash(source, spy, work_queue, data):
    send(source, spy, work_queue, mutated_body(data, source))


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(data=st.data(), cut=st.integers(0, 4000), flip=st.integers(0, 255))
def test_truncated_and_bit_flipped_payloads_never_crash(source, spy, work_queue, data, cut, flip):
    raw = bytearray(SAMPLES[source][2])
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= flip
    send(source, spy, work_queue, bytes(raw[: len(raw) - cut % len(raw)]))


# -- mangled authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(data=st.data())
def test_mangled_signature_headers_and_tokens_are_401_never_a_crash(source, spy, work_queue, data):
    raw = SAMPLES[source][2]
    signed = sign(source, raw, SECRETS[source])
    names = [name for name in signed.headers if name != "content-type"]
    mangled = {
        name: data.draw(st.text(max_size=120) | st.sampled_from(["t=1,v1=", "sha256=", "=,=,", "ts=;h1="]))
        for name in names
    }
    token = data.draw(st.text(max_size=60).filter(lambda t: t != SECRETS[source]))
    out = send(source, spy, work_queue, raw, headers=mangled, query={"token": token} if signed.query else {}, b64=False)
    if source != "mailgun":  # Mailgun signs inside the body, which is intact here
        assert out["statusCode"] == 401, out
