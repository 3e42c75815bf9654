"""Hostile input to the live state (SPEC 9.4, 9.5; issue 14): RecordEvents at the message size limit, floods of
RecordEvents and of UpdateConsent for random identities, against a server on a real redis-server. A control
client keeps deciding throughout (conftest's `control`, which runs against this module's `server`), and the
server's RSS stays bounded.

What bounds memory (docs/live-state.md, "Limits"): a call's size (--max-message-bytes, 100 events); the entries
submitted and not yet applied (LiveStateRuntime's backlog limit, 16,384 entries: past it a call answers
RESOURCE_EXHAUSTED at once, counted in offerd_events_total{result="rejected"}); the decision events buffered
(--events-buffer). What a flood writes to the log is state, not a leak: the overlay keeps one entry per identity
updated, until a fold absorbs it."""

import concurrent.futures
import random
import re
import shutil
import socket
import subprocess
import time
import uuid

import grpc
import pytest

import interop_conftest as interop

MESSAGE_LIMIT = 65536  # the hostile server runs with the default --max-message-bytes


def wait_for(condition, timeout=30.0, what="condition"):
    """Polls `condition` until it returns a true value; fails after `timeout` seconds (a bound, not a verdict)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def redis_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Overrides conftest's server: the same fixture catalog and snapshot, recording into a throwaway Redis."""
    workdir = tmp_path_factory.mktemp("hostile-live")
    port = interop.free_port()
    redis = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: redis_answers(port), what="redis-server")
        s = interop.Server(workdir, extra_args=["--events", f"redis://127.0.0.1:{port}?key=hostile"])
        yield s
        assert s.stop() == 0, s.log_path.read_text()
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def metric(server, name, labels=""):
    status, text = server.admin("/metrics")
    assert status == 200
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def rejected(server):
    return sum(metric(server, "offerd_events_total", f'{{type="{t}",result="rejected"}}') or 0
               for t in ("display", "interact", "dismiss", "consent"))


def record_request(pb, events=100, offers=30, who=None, padding=0):
    """A RecordEvents request of `events` events naming `offers` offers each; `padding` bytes of proposition id
    on the first event."""
    req = pb.RecordEventsRequest()
    for n in range(events):
        e = req.events.add(event_id=f"{uuid.uuid4().hex}-{n}", type=pb.EVENT_TYPE_DISPLAY,
                           offer_ids=[f"offer-{k}" for k in range(offers)])
        e.identity.namespace = "ECID"
        e.identity.id = who or f"hostile-{n % 7}"
    req.events[0].proposition_id = "p" * padding
    return req


def request_of_size(pb, size):
    """A valid RecordEvents request whose encoding is exactly `size` bytes (the padding's length prefix grows
    with it, so the padding is found by stepping)."""
    base = len(record_request(pb).SerializeToString())
    assert base < size, "the unpadded request is already over the size"
    padding = size - base
    while True:
        req = record_request(pb, padding=padding)
        found = len(req.SerializeToString())
        if found == size:
            return req
        padding -= found - size


def test_record_events_at_the_message_size_limit(stubs, server, control):
    stub = stubs.pb_grpc.DecisioningStub(control.channel)
    at_limit = request_of_size(stubs.pb, MESSAGE_LIMIT)
    response = stub.RecordEvents(at_limit, timeout=30)
    assert (response.recorded, response.duplicates) == (100, 0)
    # The same call again: every event is a duplicate, nothing is written twice.
    again = stub.RecordEvents(at_limit, timeout=30)
    assert (again.recorded, again.duplicates) == (0, 100)
    # One byte more is refused before anything is decoded or recorded.
    over = request_of_size(stubs.pb, MESSAGE_LIMIT + 1)
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordEvents(over, timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Nothing of it was recorded: one of its events, alone, is new.
    alone = stubs.pb.RecordEventsRequest()
    alone.events.append(over.events[1])
    response = stub.RecordEvents(alone, timeout=30)
    assert (response.recorded, response.duplicates) == (1, 0)


def _flood(calls, make_call, concurrency):
    """Runs `calls` calls `concurrency` at a time; returns the status code of each (OK for a success)."""
    codes = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(make_call, n) for n in range(calls)]
        for future in futures:
            try:
                future.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
    return codes


# What a flood may be answered: recorded, refused past the backlog limit, or not answered within SPEC 9.1's
# second (a loaded machine); never anything else.
FLOOD_ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


def test_update_consent_flood_for_random_identities(stubs, server, control):
    channels = [grpc.insecure_channel(server.target) for _ in range(4)]
    stubs_by_channel = [stubs.pb_grpc.DecisioningStub(c) for c in channels]
    keys_before = metric(server, "offerd_overlay_keys")
    rejected_before = rejected(server)
    values = ["y", "n", "p", "dn", "u"]

    def update(n):
        req = stubs.pb.UpdateConsentRequest(event_id=uuid.uuid4().hex)
        req.identity.namespace = random.choice(["ECID", "Email", "crmId"])
        req.identity.id = uuid.uuid4().hex
        req.consents["marketing.email"] = random.choice(values)
        req.consents["personalize.content"] = random.choice(values)
        stubs_by_channel[n % len(channels)].UpdateConsent(req, timeout=30)

    calls = 6000
    try:
        codes = _flood(calls, update, concurrency=64)
    finally:
        for c in channels:
            c.close()
    assert set(codes) <= FLOOD_ANSWERS, {c for c in codes if c not in FLOOD_ANSWERS}
    ok = codes.count(grpc.StatusCode.OK)
    assert ok > 0
    # Every update answered OK was applied here before its answer, under a key of its own.
    assert metric(server, "offerd_overlay_keys") >= keys_before + ok
    assert rejected(server) - rejected_before == codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    print(f"\nUpdateConsent flood: {ok} OK, {codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)} RESOURCE_EXHAUSTED, "
          f"{codes.count(grpc.StatusCode.UNAVAILABLE)} UNAVAILABLE of {calls}")


def test_record_events_flood(stubs, server, control):
    channels = [grpc.insecure_channel(server.target) for _ in range(4)]
    stubs_by_channel = [stubs.pb_grpc.DecisioningStub(c) for c in channels]
    rejected_before = rejected(server)
    # Prepared before the flood: the client's encoding is then not what limits its rate.
    requests = [record_request(stubs.pb, events=100, offers=3, who=f"flood-{n % 50}") for n in range(600)]

    def record(n):
        stubs_by_channel[n % len(channels)].RecordEvents(requests[n], timeout=30)

    try:
        codes = _flood(len(requests), record, concurrency=128)
    finally:
        for c in channels:
            c.close()
    assert set(codes) <= FLOOD_ANSWERS, {c for c in codes if c not in FLOOD_ANSWERS}
    assert codes.count(grpc.StatusCode.OK) > 0
    refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert rejected(server) - rejected_before == 100 * refused
    # Whatever was accepted is written and applied in the end: nothing stays waiting.
    wait_for(lambda: metric(server, "offerd_events_waiting") == 0, what="the backlog to empty")
    print(f"\nRecordEvents flood: {codes.count(grpc.StatusCode.OK)} OK, {refused} RESOURCE_EXHAUSTED, "
          f"{codes.count(grpc.StatusCode.UNAVAILABLE)} UNAVAILABLE of {len(requests)} calls of 100 events")
