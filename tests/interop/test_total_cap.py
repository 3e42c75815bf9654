"""A total cap (`"scope": "total"`) shared by two real servers through one Redis stream (SPEC 9.3, docs/live-state.md,
"Total caps overshoot").

What always holds is asserted: decisions taken one at a time, each seen by both servers before the next, give out
exactly the limit; under concurrent decisions on both servers the cap gives out at least the limit, every grant is
counted once on both servers, and once both have applied every decision event no server gives the offer again. How
far concurrent decisions overshoot depends on the decision rate and the propagation delay (the bound written in
docs/live-state.md); it is printed here, and measured against rate by `benchmarks/live/total_cap_overshoot.py`, not
asserted, because a verdict on it would race the machine's scheduler."""

import json
import threading

import grpc
import pytest

from conftest import build_snapshot
from helpers import request
from test_live_state import Redis, applied, metric, start, wait_for

LIMIT = 20

CATALOG = {
    "version": "total-cap-1",
    "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
    "offers": [
        {"id": "scarce", "status": "approved", "priority": 9, "tags": ["t"],
         "capping": [{"limit": LIMIT, "scope": "total", "period": "day"}],
         "representations": [{"placement": "web", "content": "scarce"}]},
        {"id": "free", "status": "approved", "priority": 1, "tags": ["t"],
         "representations": [{"placement": "web", "content": "free"}]},
    ],
    "collections": [{"id": "total", "anyTags": ["t"]}],
    "decisions": [
        {"id": "d-total", "status": "live", "scopes": [{"placement": "web", "criteria": [{"collection": "total"}]}]},
    ],
}


@pytest.fixture()
def total_dir(tmp_path):
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    (tmp_path / "profiles.jsonl").write_text(json.dumps({"identities": [{"namespace": "ECID", "id": "p0"}]}) + "\n")
    build_snapshot(tmp_path / "profiles.jsonl", tmp_path / "profiles.snap", "total-cap-snap")
    return tmp_path


def offer_given(stub, pb, person, dry_run=False):
    response = stub.Decide(request(pb, id=person, scopes=(("d-total", "web", 1),), dry_run=dry_run), timeout=10)
    items = response.propositions[0].items
    assert len(items) == 1, f"one item was asked for and the fallback-free collection always has one: {response}"
    return items[0].id


def decisions_written(server):
    return metric(server, "offerd_events_total", '{type="decision",result="written"}') or 0


def both_applied_everything(servers, grants):
    """Both servers have written their own grants' decision events and applied every server's."""
    total = sum(grants.values())
    return all(decisions_written(s) >= grants[s.port] for s in servers) and \
        all((applied(s) or 0) >= total for s in servers)


def test_one_decision_at_a_time_across_two_servers_gives_exactly_the_limit(stubs, total_dir):
    redis = Redis(total_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=total-sequential"
    servers = [start(total_dir, log), start(total_dir, log)]
    grants = {s.port: 0 for s in servers}
    try:
        channels = [grpc.insecure_channel(s.target) for s in servers]
        stubs_by_server = [stubs.pb_grpc.DecisioningStub(c) for c in channels]
        for n in range(LIMIT + 5):
            which = n % 2
            offer = offer_given(stubs_by_server[which], stubs.pb, f"seq-{n}")
            if offer == "scarce":
                grants[servers[which].port] += 1
            # Each decision is applied on both servers before the next one is taken.
            wait_for(lambda: both_applied_everything(servers, grants), what="both servers to apply every grant")
        assert sum(grants.values()) == LIMIT, grants
        assert all(g > 0 for g in grants.values()), f"both servers gave the offer out: {grants}"
        for stub in stubs_by_server:
            assert offer_given(stub, stubs.pb, "after", dry_run=True) == "free"
        for channel in channels:
            channel.close()
    finally:
        for s in servers:
            s.stop()
        redis.stop()


def test_concurrent_decisions_on_two_servers_close_the_cap_and_count_every_grant_once(stubs, total_dir):
    redis = Redis(total_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=total-concurrent"
    servers = [start(total_dir, log), start(total_dir, log)]
    threads_per_server, calls_per_thread = 4, 25
    grants = {s.port: 0 for s in servers}
    calls = {s.port: 0 for s in servers}
    errors = []
    lock = threading.Lock()

    def client(server, number):
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = stubs.pb_grpc.DecisioningStub(channel)
                for n in range(calls_per_thread):
                    offer = offer_given(stub, stubs.pb, f"c-{server.port}-{number}-{n}")
                    with lock:
                        calls[server.port] += 1
                        grants[server.port] += offer == "scarce"
        except Exception as error:  # noqa: BLE001 (reported by the test thread below)
            errors.append(repr(error))

    try:
        clients = [threading.Thread(target=client, args=(s, k)) for s in servers for k in range(threads_per_server)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=120)
        assert not errors, errors[:3]
        assert sum(calls.values()) == 2 * threads_per_server * calls_per_thread
        given = sum(grants.values())
        assert given >= LIMIT, f"the cap closed before its limit: {grants}"

        # Every grant is written once by the server that made it and applied by both: the counts converge to the
        # grants, so once both have applied everything the offer is closed on both, for anyone.
        wait_for(lambda: both_applied_everything(servers, grants), timeout=30,
                 what="both servers to apply every decision event")
        for s in servers:
            assert decisions_written(s) == grants[s.port], "a grant's decision event was written twice or lost"
        with grpc.insecure_channel(servers[0].target) as a, grpc.insecure_channel(servers[1].target) as b:
            for stub in (stubs.pb_grpc.DecisioningStub(a), stubs.pb_grpc.DecisioningStub(b)):
                assert offer_given(stub, stubs.pb, "latecomer", dry_run=True) == "free"
        print(f"total cap {LIMIT}: {given} given under {2 * threads_per_server} concurrent clients "
              f"(overshoot {given - LIMIT}); by server {list(grants.values())}")
        assert metric(servers[0], "offerd_events_dropped_total") == 0
    finally:
        for s in servers:
            s.stop()
        redis.stop()
