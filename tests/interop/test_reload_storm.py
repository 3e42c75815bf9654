"""SIGHUP storms while the catalog and the snapshot are replaced, against a real `offerd serve`.

Several threads send real SIGHUPs (`os.kill`) while the main thread replaces both files by rename, each
time with a higher version, and the file watcher sees the same changes. Readers (the admin `/metrics`
and Decide calls) must never see a version go back, and the last files must end up published. Every
wait is for a condition, with a generous bound; no verdict depends on timing.
"""

import os
import re
import signal
import threading
import time

import grpc

from conftest import FIXTURES, Server, build_snapshot
from helpers import decide, request

CATALOG_VERSIONS = 150
SNAPSHOT_EVERY = 12  # catalog steps per snapshot step
SNAPSHOT_VERSIONS = 1 + CATALOG_VERSIONS // SNAPSHOT_EVERY
SIGNAL_THREADS = 3


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def published_versions(server):
    """(catalog, snapshot) version numbers that /metrics reports now."""
    status, text = server.admin("/metrics")
    assert status == 200, text
    catalog = re.search(r'offerd_catalog_info\{version="interop-(\d+)"\} 1', text)
    snapshot = re.search(r'offerd_snapshot_info\{version="snap-(\d+)"\} 1', text)
    assert catalog and snapshot, text
    return int(catalog.group(1)), int(snapshot.group(1))


def reload_failures(server):
    text = server.admin("/metrics")[1]
    found = re.findall(r'offerd_reloads_total\{kind="(?:catalog|snapshot)",result="failure"\} (\d+)', text)
    return sum(int(count) for count in found)


class Reader(threading.Thread):
    """Reads (catalog, snapshot) versions in a loop until stopped; records every step back."""

    def __init__(self, read):
        super().__init__(daemon=True)
        self.read = read
        self.stopping = threading.Event()
        self.regressions = []
        self.errors = []
        self.reads = 0

    def run(self):
        last = (0, 0)
        while not self.stopping.is_set():
            try:
                current = self.read()
            except Exception as error:  # recorded, not swallowed: the test fails on it
                self.errors.append(repr(error))
                continue
            self.reads += 1
            if current[0] < last[0] or current[1] < last[1]:
                self.regressions.append((last, current))
            last = (max(last[0], current[0]), max(last[1], current[1]))


def test_sighup_storm_while_files_are_replaced_never_publishes_an_older_version(stubs, fresh_dir):
    staged = fresh_dir / "staged"
    staged.mkdir()
    for version in range(2, SNAPSHOT_VERSIONS + 1):
        build_snapshot(FIXTURES / "profiles.jsonl", staged / f"snap-{version}.snap", f"snap-{version}")
    catalog_text = (FIXTURES / "catalog.json").read_text()
    assert '"interop-1"' in catalog_text

    s = Server(fresh_dir)
    try:
        assert published_versions(s) == (1, 1)

        def decided_versions():
            response = decide(stubs, s.target, request(stubs.pb))
            return (int(response.catalog_version.removeprefix("interop-")),
                    int(response.snapshot_version.removeprefix("snap-")))

        readers = [Reader(lambda: published_versions(s)), Reader(decided_versions)]
        for reader in readers:
            reader.start()

        storming = threading.Event()
        storming.set()

        def send_sighups():
            while storming.is_set():
                os.kill(s.proc.pid, signal.SIGHUP)
                time.sleep(0.002)  # pacing only: two cores are shared with the server and the readers

        signallers = [threading.Thread(target=send_sighups, daemon=True) for _ in range(SIGNAL_THREADS)]
        for signaller in signallers:
            signaller.start()

        # Catalog versions 2..CATALOG_VERSIONS; every SNAPSHOT_EVERY-th step also the next snapshot version.
        for version in range(2, CATALOG_VERSIONS + 1):
            staging = fresh_dir / f"catalog-{version}.json"
            staging.write_text(catalog_text.replace('"interop-1"', f'"interop-{version}"'))
            os.replace(staging, s.catalog)
            if version % SNAPSHOT_EVERY == 0:
                os.replace(staged / f"snap-{1 + version // SNAPSHOT_EVERY}.snap", s.snapshot)
            time.sleep(0.01)  # pacing only: lets reloads interleave with the replacements

        storming.clear()
        for signaller in signallers:
            signaller.join(timeout=60)
        os.kill(s.proc.pid, signal.SIGHUP)
        final = (CATALOG_VERSIONS, SNAPSHOT_VERSIONS)
        assert wait_for(lambda: published_versions(s) == final), published_versions(s)
        # Each reader reads once more after the last files are published.
        counts = [reader.reads for reader in readers]
        assert wait_for(lambda: all(r.reads > c for r, c in zip(readers, counts)))
        for reader in readers:
            reader.stopping.set()
            reader.join(timeout=60)

        for reader in readers:
            assert reader.errors == [], reader.errors[:5]
            assert reader.regressions == [], reader.regressions[:5]
        assert decided_versions() == final
        # Every replacement was complete (a rename), so no reload may have failed.
        assert reload_failures(s) == 0, s.admin("/metrics")[1]
        log = s.log_path.read_text()
        assert "SIGHUP: reloading catalog and snapshot" in log
        assert f"version=interop-{CATALOG_VERSIONS}" in log
    finally:
        assert s.stop() == 0, s.log_path.read_text()
