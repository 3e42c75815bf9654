"""Live state across real servers (SPEC 9): two `offerd serve` processes sharing one Redis stream (a real
`redis-server` started here), and one server restarted on its file log. Conditions are waited for with generous
bounds; no verdict depends on a sleep."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import OFFERD, Server, build_snapshot, free_port
from helpers import decide, request

CATALOG = {
    "version": "live-1",
    "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
    "offers": [
        {"id": "capped", "status": "approved", "priority": 9, "tags": ["p"],
         "capping": [{"limit": 2}, {"limit": 1, "event": "display", "period": "day"}],
         "representations": [{"placement": "web", "content": "capped"}]},
        {"id": "scarce", "status": "approved", "priority": 9, "tags": ["t"],
         "capping": [{"limit": 3, "scope": "total", "period": "day"}],
         "representations": [{"placement": "web", "content": "scarce"}]},
        {"id": "free", "status": "approved", "priority": 1, "tags": ["p", "t"],
         "representations": [{"placement": "web", "content": "free"}]},
    ],
    "collections": [{"id": "per-profile", "anyTags": ["p"]}, {"id": "total", "anyTags": ["t"]}],
    "decisions": [
        {"id": "d", "status": "live", "scopes": [{"placement": "web", "criteria": [{"collection": "per-profile"}]}]},
        {"id": "d-total", "status": "live", "scopes": [{"placement": "web", "criteria": [{"collection": "total"}]}]},
    ],
}

PROFILES = [
    {"identities": [{"namespace": "ECID", "id": "ana"}, {"namespace": "Email", "id": "ana@example.com"}],
     "capping": {"capped": 1}},
    {"identities": [{"namespace": "ECID", "id": "bob"}]},
]


def wait_for(condition, timeout=20.0, what="condition"):
    """Polls `condition` until it returns a true value; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Redis:
    """A throwaway redis-server on a free port, without persistence."""

    def __init__(self, workdir, port=None, durable=False):
        self.port = port or free_port()
        # Durable: every acknowledged write is fsynced to the append-only file before the reply (docs/live-state.md).
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *persistence, "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, what="redis-server to answer PING")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture()
def live_dir(tmp_path):
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    (tmp_path / "profiles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROFILES))
    build_snapshot(tmp_path / "profiles.jsonl", tmp_path / "profiles.snap", "live-snap-1")
    return tmp_path


def start(workdir, events, *extra):
    return Server(workdir, extra_args=["--events", events, *extra],
                  catalog=workdir / "catalog.json", snapshot=workdir / "profiles.snap")


def first_offer(stubs, server, id, decision="d", ns="ECID", dry_run=False):
    response = decide(stubs, server.target, request(stubs.pb, ns=ns, id=id, scopes=((decision, "web", 1),),
                                                     dry_run=dry_run))
    items = response.propositions[0].items
    return items[0].id if items else None


def metric(server, name, labels=""):
    status, text = server.admin("/metrics")
    assert status == 200
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def applied(server):
    return metric(server, "offerd_events_total", '{type="any",result="applied"}')


def test_a_cap_reached_through_one_server_holds_on_the_other(stubs, live_dir):
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=live-test"
    a = start(live_dir, log)
    b = start(live_dir, log)
    try:
        assert metric(a, "offerd_event_log_up") == 1
        # Ana's snapshot count is 1 of 2: one decision through A reaches the cap once A has applied it.
        assert first_offer(stubs, a, "ana") == "capped"
        wait_for(lambda: first_offer(stubs, a, "ana") == "free", what="the cap on the server that decided")
        # B applies the same stream: the cap holds there, under the primary and a secondary identity.
        wait_for(lambda: first_offer(stubs, b, "ana") == "free", what="the cap on the other server")
        assert first_offer(stubs, b, "ana@example.com", ns="email") == "free"
        # Bob's count is his own: still proposed, on both servers.
        assert first_offer(stubs, b, "bob") == "capped"
        assert first_offer(stubs, a, "bob") == "capped"

        # A total cap of 3 per day: decisions for three people through A close it for everyone on B.
        for person in ["t1", "t2", "t3"]:
            assert first_offer(stubs, a, person, decision="d-total") == "scarce"
        wait_for(lambda: first_offer(stubs, b, "someone-else", decision="d-total") == "free",
                 what="the total cap on the other server")
        assert metric(b, "offerd_overlay_keys") >= 4
        assert metric(a, "offerd_events_dropped_total") == 0
    finally:
        codes = [a.stop(), b.stop()]
        redis.stop()
    assert codes == [0, 0], a.log_path.read_text() + b.log_path.read_text()


def test_dry_run_records_nothing(stubs, live_dir):
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=dry-run"
    a = start(live_dir, log)
    b = start(live_dir, log)
    try:
        for _ in range(5):
            assert first_offer(stubs, a, "bob", dry_run=True) == "capped"
        # A marker decision after the dry runs: once B has applied it, B has applied everything A wrote before.
        assert first_offer(stubs, a, "marker") == "capped"
        wait_for(lambda: applied(b) == 1, what="the marker decision on the other server")
        assert first_offer(stubs, b, "bob") == "capped"
        assert applied(a) >= 1
    finally:
        a.stop()
        b.stop()
        redis.stop()


def test_a_restarted_server_replays_its_file_log_before_it_is_ready(stubs, live_dir):
    log = f"file:{live_dir / 'events.log'}"
    a = start(live_dir, log)
    try:
        wait_for(lambda: first_offer(stubs, a, "ana") == "free", what="the cap on a file log")
    finally:
        assert a.stop() == 0, a.log_path.read_text()
    # Ready means replayed: the first Decide after readiness already sees the cap.
    again = start(live_dir, log)
    try:
        assert first_offer(stubs, again, "ana") == "free"
        assert first_offer(stubs, again, "bob") == "capped"
    finally:
        assert again.stop() == 0, again.log_path.read_text()


def test_a_second_server_on_the_same_file_log_refuses_to_start(live_dir):
    log = f"file:{live_dir / 'events.log'}"
    a = start(live_dir, log)
    try:
        with pytest.raises(RuntimeError, match="in use by process"):
            start(live_dir, log)
        # A batch that records is refused the same way; a dry run reads the file beside its server.
        (live_dir / "batch-in.jsonl").write_text(json.dumps(
            {"identity": {"namespace": "ECID", "id": "bob"}, "scopes": [{"decisionId": "d", "placementId": "web"}]})
            + "\n")
        refused = subprocess.run(
            [OFFERD, "decide", "batch", "--catalog", live_dir / "catalog.json", "--snapshot",
             live_dir / "profiles.snap", "--input", live_dir / "batch-in.jsonl", "--output", "-", "--events", log],
            capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "in use by process" in refused.stderr, refused.stderr
        answers, summary = batch_first_offers(live_dir, log, ["bob"], "--dry-run")
        assert answers == [("capped", None)] and "dry run" in summary
    finally:
        a.stop()


def test_not_ready_until_the_log_is_reachable(stubs, live_dir):
    port = free_port()
    workdir = live_dir
    server = Server.__new__(Server)
    # Started by hand: the fixture's Server waits for readiness, which must not come yet.
    from conftest import OFFERD
    admin_port = free_port()
    grpc_port = free_port()
    out = open(workdir / "unready.log", "w")
    proc = subprocess.Popen(
        [OFFERD, "serve", "--catalog", str(workdir / "catalog.json"), "--snapshot", str(workdir / "profiles.snap"),
         "--port", str(grpc_port), "--admin-port", str(admin_port), "--threads", "1",
         "--events", f"redis://127.0.0.1:{port}?key=late"],
        stdout=out, stderr=subprocess.STDOUT)
    server.admin_port = admin_port
    server.port = grpc_port
    try:
        import urllib.request

        def readyz():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
            except OSError:
                return None

        wait_for(lambda: readyz() == 503, what="the admin endpoint to answer 503")
        with pytest.raises(grpc.RpcError) as error:
            decide(stubs, f"127.0.0.1:{grpc_port}", request(stubs.pb, id="ana", scopes=(("d", "web", 1),)))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        redis = Redis(workdir, port=port)
        try:
            wait_for(lambda: readyz() == 200, what="readiness once Redis is up")
            assert first_offer(stubs, server, "ana") == "capped"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            redis.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()


def record_events(stubs, server, events, dry_run=False, timeout=10):
    pb = stubs.pb
    req = pb.RecordEventsRequest(dry_run=dry_run)
    for event in events:
        e = req.events.add(event_id=event["id"], type=event.get("type", pb.EVENT_TYPE_DISPLAY),
                           offer_ids=event.get("offers", ["capped"]), timestamp_ms=event.get("ts", 0))
        e.identity.namespace = event.get("ns", "ECID")
        e.identity.id = event["who"]
    with grpc.insecure_channel(server.target) as channel:
        return pb_stub(stubs, channel).RecordEvents(req, timeout=timeout)


def update_consent(stubs, server, event_id, who, consents, ns="ECID", dry_run=False, timeout=10):
    req = stubs.pb.UpdateConsentRequest(event_id=event_id, dry_run=dry_run)
    req.identity.namespace = ns
    req.identity.id = who
    for key, value in consents.items():
        req.consents[key] = value
    with grpc.insecure_channel(server.target) as channel:
        return pb_stub(stubs, channel).UpdateConsent(req, timeout=timeout)


def pb_stub(stubs, channel):
    return stubs.pb_grpc.DecisioningStub(channel)


def reason(stubs, server, id, ns="ECID"):
    response = decide(stubs, server.target, request(stubs.pb, ns=ns, id=id, scopes=(("d", "web", 1),)))
    return response.propositions[0].reason


def test_an_opt_out_through_one_server_denies_personalization_on_the_other(stubs, live_dir):
    pb = stubs.pb
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=consent"
    a = start(live_dir, log)
    b = start(live_dir, log)
    try:
        assert first_offer(stubs, b, "bob") == "capped"
        # A dry run records nothing.
        assert update_consent(stubs, a, "c0", "bob", {"personalize.content": "n"}, dry_run=True).position == ""
        answer = update_consent(stubs, a, "c1", "bob", {"personalize.content": "n"})
        assert answer.position and not answer.duplicate
        # OK means applied on the answering server: the very next Decide there is denied.
        assert reason(stubs, a, "bob") == pb.REASON_PERSONALIZATION_DENIED
        wait_for(lambda: reason(stubs, b, "bob") == pb.REASON_PERSONALIZATION_DENIED,
                 what="the opt-out on the other server")
        # Through a secondary identity the update reaches the profile's key; an unknown identity keeps its own.
        update_consent(stubs, b, "c2", "ana@example.com", {"personalize.content": "n"}, ns="Email")
        assert reason(stubs, b, "ana") == pb.REASON_PERSONALIZATION_DENIED
        update_consent(stubs, b, "c3", "stranger", {"personalize.content": "n"})
        wait_for(lambda: reason(stubs, a, "stranger") == pb.REASON_PERSONALIZATION_DENIED and
                 reason(stubs, a, "ana") == pb.REASON_PERSONALIZATION_DENIED, what="both opt-outs on the first server")
        # The same event id again is a duplicate and changes nothing; a later grant wins.
        assert update_consent(stubs, a, "c1", "bob", {"personalize.content": "y"}).duplicate
        assert reason(stubs, a, "bob") == pb.REASON_PERSONALIZATION_DENIED
        update_consent(stubs, a, "c4", "bob", {"personalize.content": "y"})
        # (Every Decide here records a decision event, so the offer chosen may be capped by now: the reason says
        # whether personalization was allowed.)
        assert reason(stubs, a, "bob") != pb.REASON_PERSONALIZATION_DENIED
        wait_for(lambda: reason(stubs, b, "bob") != pb.REASON_PERSONALIZATION_DENIED,
                 what="the grant on the other server")
        assert reason(stubs, b, "stranger") == pb.REASON_PERSONALIZATION_DENIED
    finally:
        a.stop()
        b.stop()
        redis.stop()


def batch_first_offers(live_dir, log, who, *extra):
    """Runs `offerd decide batch --events LOG` over one line per name in `who` (scope d, one item) and returns each
    line's first offer id and reason."""
    lines = "".join(json.dumps({"identity": {"namespace": "ECID", "id": name},
                                "scopes": [{"decisionId": "d", "placementId": "web"}]}) + "\n" for name in who)
    (live_dir / "batch-in.jsonl").write_text(lines)
    done = subprocess.run(
        [OFFERD, "decide", "batch", "--catalog", live_dir / "catalog.json", "--snapshot", live_dir / "profiles.snap",
         "--input", live_dir / "batch-in.jsonl", "--output", live_dir / "batch-out.jsonl", "--events", log,
         "--quiet", *extra], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = []
    for line in (live_dir / "batch-out.jsonl").read_text().splitlines():
        proposition = json.loads(line)["propositions"][0]
        items = proposition.get("items", [])
        answers.append((items[0]["id"] if items else None, proposition.get("reason")))
    return answers, done.stderr


def connect_json(server, method, body):
    """A Connect unary call with application/json over HTTP/1.1: (HTTP status, decoded JSON body)."""
    req = urllib.request.Request(f"http://{server.target}/offerd.v1.Decisioning/{method}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "connect-protocol-version": "1"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_record_events_and_update_consent_over_connect_json(stubs, live_dir):
    """SPEC 10: every unary method speaks Connect's application/json, the live-state ones included."""
    a = start(live_dir, f"file:{live_dir / 'events.log'}")
    try:
        decide_bob = {"identity": {"namespace": "ECID", "id": "bob"},
                      "scopes": [{"decisionId": "d", "placementId": "web"}], "dryRun": True}
        status, answer = connect_json(a, "Decide", decide_bob)
        assert status == 200 and answer["propositions"][0]["items"][0]["id"] == "capped"
        # A display caps `capped` for bob today (its cap: 1 display a day).
        status, answer = connect_json(a, "RecordEvents", {"events": [
            {"eventId": "d1", "identity": {"namespace": "ECID", "id": "bob"}, "type": "EVENT_TYPE_DISPLAY",
             "offerIds": ["capped"]}]})
        assert status == 200 and answer["recorded"] == 1 and answer["position"], answer
        status, answer = connect_json(a, "Decide", decide_bob)
        assert answer["propositions"][0]["items"][0]["id"] == "free"
        # The same event id again is a duplicate.
        status, answer = connect_json(a, "RecordEvents", {"events": [
            {"eventId": "d1", "identity": {"namespace": "ECID", "id": "bob"}, "type": 1, "offerIds": ["capped"]}]})
        assert status == 200 and answer == {"duplicates": 1}, answer
        # An opt-out through JSON denies personalization at once.
        status, answer = connect_json(a, "UpdateConsent", {
            "eventId": "c1", "identity": {"namespace": "ECID", "id": "bob"},
            "consents": {"personalize.content": "n"}})
        assert status == 200 and answer["position"] and "duplicate" not in answer, answer
        status, answer = connect_json(a, "Decide", decide_bob)
        assert answer["propositions"][0]["reason"] == "REASON_PERSONALIZATION_DENIED"
        # Errors name the field, as for protobuf.
        status, answer = connect_json(a, "RecordEvents", {"events": [{"eventId": "x", "offerIds": [3]}]})
        assert status == 400 and answer["code"] == "invalid_argument"
        assert "events[0].offer_ids[0]" in answer["message"]
        status, answer = connect_json(a, "UpdateConsent", {"eventId": "c2", "identity": {"namespace": "ECID",
                                                                                         "id": "bob"},
                                                           "consents": {"personalize.everything": "n"}})
        assert status == 400 and answer["code"] == "invalid_argument"
    finally:
        a.stop()


def test_a_batch_reads_and_records_in_the_servers_redis_log(stubs, live_dir):
    """`offerd decide batch --events redis://...` (SPEC 12): an opt-out and a cap recorded through a server hold
    in the batch, the batch's decision events count for its later lines and reach the server."""
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=batch"
    a = start(live_dir, log)
    try:
        update_consent(stubs, a, "c1", "bob", {"personalize.content": "n"})
        # carl's cap of 2 decisions is reached through the server (two Decides record two decision events).
        assert first_offer(stubs, a, "carl") == "capped"
        assert first_offer(stubs, a, "carl") == "capped"
        # ana's snapshot holds 1 of her 2. A dry run reads the log and records nothing: ana keeps `capped`.
        answers, _ = batch_first_offers(live_dir, log, ["ana", "ana", "bob", "carl"], "--dry-run")
        assert answers == [("capped", None), ("capped", None), (None, "REASON_PERSONALIZATION_DENIED"),
                           ("free", None)]
        answers, summary = batch_first_offers(live_dir, log, ["ana", "ana", "bob", "carl"])
        assert answers == [("capped", None), ("free", None), (None, "REASON_PERSONALIZATION_DENIED"),
                           ("free", None)], summary
        assert "1 decision events recorded" in summary
        # The server follows the log: the batch's decision event caps ana there too (a dry-run Decide records
        # nothing of its own).
        wait_for(lambda: first_offer(stubs, a, "ana", dry_run=True) == "free", what="the batch's event on the server")
        # Recording batches decide in input order, on one thread, whatever --threads says (and say so).
        _, summary = batch_first_offers(live_dir, log, ["ana"], "--threads", "2")
        assert "deciding on one thread" in summary
    finally:
        a.stop()
        redis.stop()


def test_record_events_caps_on_both_servers_and_validates(stubs, live_dir):
    pb = stubs.pb
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=feedback"
    a = start(live_dir, log)
    b = start(live_dir, log)
    try:
        # A bad event fails the whole call and records nothing.
        with pytest.raises(grpc.RpcError) as error:
            record_events(stubs, a, [{"id": "d1", "who": "bob"}, {"id": "d2", "who": "bob", "offers": [""]}])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "events[1].offer_ids[0] is empty" in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            record_events(stubs, a, [{"id": "d1", "who": "bob", "type": pb.EVENT_TYPE_UNSPECIFIED}])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert first_offer(stubs, a, "bob") == "capped"
        # One display a day caps bob's offer: on the answering server at once, on the other soon after.
        answer = record_events(stubs, a, [{"id": "d1", "who": "bob"}])
        assert (answer.recorded, answer.duplicates) == (1, 0) and answer.position
        assert first_offer(stubs, a, "bob") == "free"
        wait_for(lambda: first_offer(stubs, b, "bob") == "free", what="the display cap on the other server")
        again = record_events(stubs, b, [{"id": "d1", "who": "bob"}, {"id": "d3", "who": "carl",
                                                                        "type": pb.EVENT_TYPE_DISMISS}])
        assert (again.recorded, again.duplicates) == (1, 1)
        assert first_offer(stubs, b, "carl") == "capped", "a dismiss counts for no rule"
    finally:
        a.stop()
        b.stop()
        redis.stop()


def test_without_an_event_log_recording_is_a_failed_precondition(stubs, live_dir):
    s = start(live_dir, "none")
    try:
        with pytest.raises(grpc.RpcError) as error:
            update_consent(stubs, s, "c1", "bob", {"marketing.any": "n"})
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as error:
            update_consent(stubs, s, "c1", "bob", {"marketing.fax": "n"})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        s.stop()


def test_redis_killed_and_restarted(stubs, live_dir):
    """Decide goes on answering while Redis is down, recording answers UNAVAILABLE, decision events wait in the
    buffer and are written when Redis is back, and an acknowledged event survives the kill (appendfsync always)."""
    redis = Redis(live_dir, durable=True)
    log = f"redis://127.0.0.1:{redis.port}?key=outage"
    a = start(live_dir, log)
    b = start(live_dir, log)
    try:
        assert record_events(stubs, a, [{"id": "k1", "who": "bob"}]).recorded == 1
        redis.proc.kill()
        redis.proc.wait(timeout=10)
        # Decide never fails meanwhile, and the decisions A makes count on A at once (SPEC 9.1): dora's cap of 2
        # holds there while they wait in A's buffer. Every "capped" answer is one buffered decision event.
        answers = []
        wait_for(lambda: answers.append(first_offer(stubs, a, "dora")) or answers[-1] == "free",
                 what="dora's cap on A while Redis is down")
        buffered = answers.count("capped")
        assert buffered >= 2, answers
        assert first_offer(stubs, b, "ana") == "capped"

        def unavailable():
            try:
                record_events(stubs, a, [{"id": "k2", "who": "carl"}])
                return False
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                return True

        wait_for(unavailable, what="RecordEvents to answer UNAVAILABLE")
        wait_for(lambda: metric(a, "offerd_event_log_up") == 0, what="A to report the log down")
        assert first_offer(stubs, b, "bob") == "free"

        redis = Redis(live_dir, port=redis.port, durable=True)
        wait_for(lambda: metric(a, "offerd_event_log_up") == 1, what="A to reach Redis again")
        # The buffered decisions are written (A wrote no decision before the kill), reach B, and a server started
        # now replays the acknowledged display from the AOF.
        written = lambda: metric(a, "offerd_events_total", '{type="decision",result="written"}')
        wait_for(lambda: written() == buffered, what="A's buffered decision events to be written")
        assert metric(a, "offerd_events_dropped_total") == 0
        wait_for(lambda: first_offer(stubs, b, "dora") == "free", what="A's buffered decisions on B")
        c = start(live_dir, log)
        try:
            assert first_offer(stubs, c, "bob") == "free"
            assert record_events(stubs, a, [{"id": "k2", "who": "carl"}]).recorded == 1
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()
        redis.stop()
