"""Folding the event log into snapshots (SPEC 9.6) with the real CLI and real servers: `offerd events export`,
`offerd snapshot build --events [--base]`, `snapshot inspect`'s watermark, a folded snapshot swapped into running
servers (file log; Redis with two servers), and `offerd events trim`. The verdicts are exact cap boundaries: a
count doubled by the swap closes the offer too early, a count lost leaves it open too long."""

import json
import os
import subprocess
import time

import pytest

from conftest import OFFERD, build_snapshot
from test_live_state import Redis, applied, first_offer, metric, reason, start, update_consent, wait_for

# "five" may be decided 5 times per person (lifetime); "free" is what comes after.
CATALOG = {
    "version": "fold-1",
    "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
    "offers": [
        {"id": "five", "status": "approved", "priority": 9, "tags": ["p"],
         "capping": [{"limit": 5}],
         "representations": [{"placement": "web", "content": "five"}]},
        {"id": "free", "status": "approved", "priority": 1, "tags": ["p"],
         "representations": [{"placement": "web", "content": "free"}]},
    ],
    "collections": [{"id": "per-profile", "anyTags": ["p"]}],
    "decisions": [
        {"id": "d", "status": "live", "scopes": [{"placement": "web", "criteria": [{"collection": "per-profile"}]}]},
    ],
}

# Carl's source count is 1 of 5; Dora is in the snapshot too.
PROFILES = [
    {"identities": [{"namespace": "ECID", "id": "carl"}], "capping": {"five": 1}},
    {"identities": [{"namespace": "ECID", "id": "dora"}]},
]


def offerd(*args, check=True):
    result = subprocess.run([OFFERD, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture()
def fold_dir(tmp_path):
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    (tmp_path / "profiles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROFILES))
    build_snapshot(tmp_path / "profiles.jsonl", tmp_path / "profiles.snap", "plain-1")
    return tmp_path


def decide_once(stubs, server, who):
    """One Decide that records its decision event, waited for until the server has applied it."""
    before = applied(server)
    offer = first_offer(stubs, server, who)
    if offer == "five":
        wait_for(lambda: applied(server) > before, what="the decision event applied")
    return offer


def swap_in(workdir, built, servers, version):
    """Renames a built snapshot over the served path and waits until every server serves it."""
    os.replace(built, workdir / "profiles.snap")
    for server in servers:
        wait_for(lambda: metric(server, "offerd_snapshot_info", f'{{version="{version}"}}') == 1, timeout=30,
                 what=f"snapshot {version} swapped in")


def read_export(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_a_folded_snapshot_swapped_in_counts_nothing_twice_and_loses_nothing(stubs, fold_dir, backend):
    pb = stubs.pb
    redis = Redis(fold_dir) if backend == "redis" else None
    log = f"redis://127.0.0.1:{redis.port}?key=fold" if redis else f"file:{fold_dir / 'events.log'}"
    servers = [start(fold_dir, log)] + ([start(fold_dir, log)] if redis else [])
    a, b = servers[0], servers[-1]
    try:
        # Carl: 1 (source) + 2 decisions = 3. Dora opts out.
        assert decide_once(stubs, a, "carl") == "five"
        assert decide_once(stubs, a, "carl") == "five"
        update_consent(stubs, a, "opt-out-1", "dora", {"personalize.content": "n"})
        assert reason(stubs, a, "dora") == pb.REASON_PERSONALIZATION_DENIED
        wait_for(lambda: applied(b) == applied(a), what="both servers at the same position")

        # The export while the servers run (a file log is read without its lock).
        offerd("events", "export", "--events", log, "--output", fold_dir / "export.jsonl")
        entries = read_export(fold_dir / "export.jsonl")
        assert [e["type"] for e in entries].count("decision") >= 2
        assert any(e["type"] == "consent" and e["consents"] == {"personalize.content": "n"} and
                   e["key"] == {"namespace": "ecid", "id": "dora"} for e in entries)
        watermark = entries[-1]["position"]

        # One more decision after the export: it lies after the watermark. Carl: 4.
        assert decide_once(stubs, a, "carl") == "five"

        # Fold the export (carl +2, dora's opt-out) into a new snapshot of the same source.
        offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "folded.snap",
               "--version", "folded-1", "--events", fold_dir / "export.jsonl")
        inspect = offerd("snapshot", "inspect", fold_dir / "folded.snap").stdout
        assert f"watermark: {watermark}\n" in inspect
        assert "watermark: none" in offerd("snapshot", "inspect", fold_dir / "profiles.snap").stdout

        swap_in(fold_dir, fold_dir / "folded.snap", servers, "folded-1")
        # Carl is at 4 of 5 on every server: one more "five", then "free". (Doubled: "free" at once; lost: more.)
        wait_for(lambda: applied(b) == applied(a), what="both servers at the same position")
        assert decide_once(stubs, b, "carl") == "five"
        wait_for(lambda: applied(a) == applied(b), what="both servers at the same position")
        for server in servers:
            assert first_offer(stubs, server, "carl") == "free"
            assert reason(stubs, server, "dora") == pb.REASON_PERSONALIZATION_DENIED

        # Fold again with --base: the new export's entries after the first watermark are added, the rest kept.
        offerd("events", "export", "--events", log, "--output", fold_dir / "export2.jsonl")
        offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "folded2.snap",
               "--version", "folded-2", "--base", fold_dir / "profiles.snap", "--events", fold_dir / "export2.jsonl")
        second_watermark = read_export(fold_dir / "export2.jsonl")[-1]["position"]
        assert f"watermark: {second_watermark}\n" in offerd("snapshot", "inspect", fold_dir / "folded2.snap").stdout
        # The same fold straight from the log, without an export file, is the same snapshot.
        offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "direct.snap",
               "--version", "folded-2", "--events", log)
        assert (fold_dir / "direct.snap").read_bytes()[384:] == (fold_dir / "folded2.snap").read_bytes()[384:]
        swap_in(fold_dir, fold_dir / "folded2.snap", servers, "folded-2")
        for server in servers:
            assert first_offer(stubs, server, "carl") == "free"
            assert reason(stubs, server, "dora") == pb.REASON_PERSONALIZATION_DENIED
        # Back to the snapshot without folding: every entry counts again, nothing twice.
        build_snapshot(fold_dir / "profiles.jsonl", fold_dir / "plain.snap", "plain-2")
        swap_in(fold_dir, fold_dir / "plain.snap", servers, "plain-2")
        for server in servers:
            assert first_offer(stubs, server, "carl") == "free"
            assert reason(stubs, server, "dora") == pb.REASON_PERSONALIZATION_DENIED
    finally:
        codes = [server.stop() for server in servers]
        if redis:
            redis.stop()
    assert codes == [0] * len(servers), "".join(s.log_path.read_text() for s in servers)


def test_a_restart_on_a_folded_snapshot_replays_only_the_rest(stubs, fold_dir):
    log = f"file:{fold_dir / 'events.log'}"
    a = start(fold_dir, log)
    try:
        for _ in range(3):
            assert decide_once(stubs, a, "carl") == "five"
    finally:
        assert a.stop() == 0, a.log_path.read_text()
    # Folded straight from the stopped server's file log: carl's 3 decisions are in the snapshot now.
    offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "profiles.snap",
           "--version", "folded-1", "--events", log)
    again = start(fold_dir, log)
    try:
        # 1 + 3 = 4: exactly one more.
        assert decide_once(stubs, again, "carl") == "five"
        assert first_offer(stubs, again, "carl") == "free"
    finally:
        assert again.stop() == 0, again.log_path.read_text()


def test_trim_keeps_what_a_watermark_needs(stubs, fold_dir):
    redis = Redis(fold_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=trim"
    a = start(fold_dir, log)
    try:
        for _ in range(4):
            assert decide_once(stubs, a, "carl") == "five"
        offerd("events", "export", "--events", log, "--output", fold_dir / "all.jsonl")
        entries = read_export(fold_dir / "all.jsonl")
        assert len(entries) == 4
        keep_after = entries[2]["position"]
        # Today the previous month holds every entry: nothing goes.
        offerd("events", "trim", "--events", log, "--keep-after", keep_after)
        offerd("events", "export", "--events", log, "--output", fold_dir / "kept.jsonl")
        assert read_export(fold_dir / "kept.jsonl") == entries
        # A hundred days from now the month rule no longer holds anything: the cut is the position.
        later = int(time.time() * 1000) + 100 * 86_400_000
        offerd("events", "trim", "--events", log, "--keep-after", keep_after, "--now-ms", later)
        offerd("events", "export", "--events", log, "--output", fold_dir / "kept.jsonl")
        assert read_export(fold_dir / "kept.jsonl") == entries[2:]
        # --after exports only what follows a position.
        offerd("events", "export", "--events", log, "--after", keep_after, "--output", fold_dir / "tail.jsonl")
        assert read_export(fold_dir / "tail.jsonl") == entries[3:]
    finally:
        assert a.stop() == 0, a.log_path.read_text()
        redis.stop()

    # A file log: the CLI trims it only while no server holds it.
    file_log = f"file:{fold_dir / 'events.log'}"
    b = start(fold_dir, file_log)
    try:
        for _ in range(3):
            decide_once(stubs, b, "dora")
        offerd("events", "export", "--events", file_log, "--output", fold_dir / "file.jsonl")
        entries = read_export(fold_dir / "file.jsonl")
        held = offerd("events", "trim", "--events", file_log, "--keep-after", entries[1]["position"], check=False)
        assert held.returncode == 1 and "in use by process" in held.stderr
    finally:
        assert b.stop() == 0, b.log_path.read_text()
    later = int(time.time() * 1000) + 100 * 86_400_000
    offerd("events", "trim", "--events", file_log, "--keep-after", entries[1]["position"], "--now-ms", later)
    offerd("events", "export", "--events", file_log, "--output", fold_dir / "file-kept.jsonl")
    assert read_export(fold_dir / "file-kept.jsonl") == entries[1:]


def test_bad_fold_inputs_are_named(fold_dir):
    (fold_dir / "bad.jsonl").write_text(
        '{"position":"1","key":{"namespace":"ecid","id":"x"},"type":"display","timeMs":1}\n'
        '{"position":"2","key":{"namespace":"ecid","id":"x"},"type":"click","timeMs":1}\n')
    result = offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "out.snap",
                    "--events", fold_dir / "bad.jsonl", check=False)
    assert result.returncode == 1
    assert "bad.jsonl:2" in result.stderr and "click" in result.stderr
    assert not (fold_dir / "out.snap").exists()
    result = offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "out.snap",
                    "--base", fold_dir / "profiles.snap", check=False)
    assert result.returncode != 0 and "--base needs --events" in result.stderr
    result = offerd("events", "trim", "--events", "file:" + str(fold_dir / "x.log"), "--keep-after", "nope",
                    check=False)
    assert result.returncode != 0 and "not a log position" in result.stderr


def test_without_an_event_log_a_folded_snapshot_still_caps_and_denies(stubs, fold_dir):
    pb = stubs.pb
    log = f"file:{fold_dir / 'events.log'}"
    a = start(fold_dir, log)
    try:
        for _ in range(4):
            assert decide_once(stubs, a, "carl") == "five"
        update_consent(stubs, a, "opt-out-1", "dora", {"personalize.content": "n"})
    finally:
        assert a.stop() == 0, a.log_path.read_text()
    offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "profiles.snap",
           "--version", "folded-1", "--events", log)
    # 1 (source) + 4 (folded) = 5: capped; Dora's folded opt-out holds; with no log at all.
    b = start(fold_dir, "none")
    try:
        assert first_offer(stubs, b, "carl") == "free"
        assert reason(stubs, b, "dora") == pb.REASON_PERSONALIZATION_DENIED
    finally:
        assert b.stop() == 0, b.log_path.read_text()
    # `offerd decide` (no server, no log) reads the folded state the same way.
    common = ["decide", "--catalog", fold_dir / "catalog.json", "--snapshot", fold_dir / "profiles.snap",
              "--scope", "d:web"]
    assert '"free"' in offerd(*common, "--id", "ECID:carl").stdout
    assert "PERSONALIZATION_DENIED" in offerd(*common, "--id", "ECID:dora").stdout


def test_a_snapshot_folded_from_another_log_is_flagged_at_start(stubs, fold_dir):
    log = f"file:{fold_dir / 'events.log'}"
    a = start(fold_dir, log)
    try:
        for _ in range(2):
            decide_once(stubs, a, "carl")
    finally:
        assert a.stop() == 0, a.log_path.read_text()
    offerd("snapshot", "build", "--input", fold_dir / "profiles.jsonl", "--output", fold_dir / "profiles.snap",
           "--version", "folded-1", "--events", log)
    # A new, empty log under the folded snapshot: the server serves, and says the watermark is past its log.
    b = start(fold_dir, f"file:{fold_dir / 'new-events.log'}")
    try:
        assert first_offer(stubs, b, "carl") == "five"
    finally:
        assert b.stop() == 0
    assert "snapshot watermark after the end of the event log" in b.log_path.read_text()
