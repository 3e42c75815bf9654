"""`offerd decide batch` and `offerd decide` against the real server: on random worlds (catalogs, profiles,
requests), every batch line equals the answer grpcio gets from `offerd serve` for the same request, proposition
ids aside; the JSON is read by Python's protobuf `json_format`, and the requests are written by it in both of
its naming styles. Also: order and bytes whatever --threads, error lines, files that cannot be read or written,
empty input, audiences, and consent."""

import json
import pathlib
import random
import re
import subprocess
import sys

import pytest
from google.protobuf import json_format

from conftest import FIXTURES, OFFERD, ROOT, Server, build_snapshot
from helpers import decide

UUID = re.compile(r'"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"')


def run(*args, input=None, timeout=120):
    return subprocess.run([OFFERD, *map(str, args)], capture_output=True, input=input, timeout=timeout)


def batch(world, *args, input=None, timeout=120):
    return run("decide", "batch", "--catalog", world.catalog, "--snapshot", world.snapshot, *args, input=input,
               timeout=timeout)


class World:
    """A catalog, a profile source and its snapshot, with what random requests need to know about them."""

    def __init__(self, directory, catalog, profiles):
        self.directory = pathlib.Path(directory)
        self.catalog = self.directory / "catalog.json"
        self.catalog.write_text(pathlib.Path(catalog).read_text())
        self.source = pathlib.Path(profiles)
        self.snapshot = self.directory / "profiles.snap"
        build_snapshot(self.source, self.snapshot, "batch-snap")
        data = json.loads(self.catalog.read_text())
        self.decisions = [d["id"] for d in data["decisions"]] + ["no-such-decision"]
        self.placements = [p["id"] for p in data["placements"]] + ["no-such-placement"]
        self.profiles = [json.loads(line) for line in self.source.read_text().splitlines() if line.strip()]
        self.identities = [(i["namespace"], i["id"]) for p in self.profiles for i in p["identities"]]


def make_world(kind, directory, seed):
    directory = pathlib.Path(directory)
    if kind == "fixtures":
        return World(directory, FIXTURES / "catalog.json", FIXTURES / "profiles.jsonl")
    profiles = directory / "profiles.jsonl"
    subprocess.run([OFFERD, "profiles", "generate", "--count", "300", "--seed", str(seed), "--output", profiles],
                   check=True, capture_output=True)
    if kind == "examples":
        return World(directory, ROOT / "examples" / "catalog.json", profiles)
    catalog = directory / "bench-catalog.json"
    subprocess.run([sys.executable, ROOT / "benchmarks" / "load" / "make_catalog.py", catalog], check=True)
    return World(directory, catalog, profiles)


def random_requests(pb, world, rng, count):
    requests = []
    contexts = [("page", lambda: rng.choice(["home", "cart"])), ("device", lambda: rng.choice(["mobile", "desktop"])),
                ("page.type", lambda: "app"), ("cartValue", lambda: rng.randint(0, 400) / 4),
                ("loggedIn", lambda: rng.random() < 0.5), ("nothing", lambda: None)]
    for n in range(count):
        r = pb.DecideRequest(request_id="" if rng.random() < 0.2 else f"req-{n}-é",
                             allow_duplicates=rng.random() < 0.3, include_content=rng.random() < 0.5,
                             include_metadata=rng.random() < 0.5, dry_run=rng.random() < 0.2,
                             explain=rng.random() < 0.3)
        namespace, identity = rng.choice(world.identities)
        if rng.random() < 0.15:
            namespace, identity = "ECID", f"unknown-{rng.randint(0, 40)}"
        elif rng.random() < 0.2:
            namespace = namespace.lower() if rng.random() < 0.5 else namespace.upper()
        r.identity.namespace, r.identity.id = namespace, identity
        for _ in range(rng.randint(1, 3)):
            r.scopes.add(decision_id=rng.choice(world.decisions), placement_id=rng.choice(world.placements),
                         item_count=rng.choice([0, 1, 2, 3, 5]))
        for key, make in rng.sample(contexts, rng.randint(0, len(contexts))):
            value = make()
            if value is None:
                r.context[key].SetInParent()
            elif isinstance(value, bool):
                r.context[key].bool_value = value
            elif isinstance(value, float):
                r.context[key].number_value = value
            else:
                r.context[key].string_value = value
        requests.append(r)
    return requests


def as_json_line(request, rng):
    return json.dumps(json_format.MessageToDict(request, preserving_proto_field_name=rng.random() < 0.5),
                      ensure_ascii=rng.random() < 0.5)


def comparable(pb, response, generated_request_id):
    response = pb.DecideResponse.FromString(response.SerializeToString())
    if generated_request_id:
        assert len(response.request_id) == 36
        response.request_id = ""
    for p in response.propositions:
        assert len(p.proposition_id) == 36
        p.proposition_id = ""
    return response


@pytest.fixture(scope="module", params=[("fixtures", 1, []), ("examples", 2, []), ("bench", 3, []),
                                        ("examples", 4, ["--consent-default", "denied"]),
                                        ("fixtures", 5, ["--unknown-profile", "fallback"])],
                ids=["fixtures", "examples", "bench", "examples-consent-denied", "fixtures-unknown-fallback"])
def served_world(request, tmp_path_factory):
    kind, seed, flags = request.param
    world = make_world(kind, tmp_path_factory.mktemp(f"world-{kind}-{seed}"), seed)
    server = Server(world.directory, extra_args=["--allow-explain", *flags], catalog=world.catalog,
                    snapshot=world.snapshot)
    yield world, server, seed, flags
    assert server.stop() == 0, server.log_path.read_text()


def test_every_line_equals_the_servers_answer(stubs, served_world, tmp_path):
    world, server, seed, flags = served_world
    rng = random.Random(seed)
    requests = random_requests(stubs.pb, world, rng, 400)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(as_json_line(r, rng) + "\n" for r in requests), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = batch(world, "--input", source, "--output", output, "--threads", 2, *flags)
    assert result.returncode == 0, result.stderr.decode()
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(requests)
    seen = set()
    for request, line in zip(requests, lines):
        ours = json_format.Parse(line, stubs.pb.DecideResponse())
        theirs = decide(stubs, server.target, request)
        generated = request.request_id == ""
        assert comparable(stubs.pb, ours, generated) == comparable(stubs.pb, theirs, generated), line
        # Our JSON holds what Python's printer writes for the same message: the same names, the same fields left
        # out, enums by name (numbers compare by value: Python writes 2.0 where we write 2).
        assert json_format.MessageToDict(ours) == json.loads(line)
        seen.update((p.outcome, p.reason) for p in ours.propositions)
    assert len(seen) >= 3, seen


def test_every_profile_of_the_audience_equals_the_servers_answer(stubs, served_world, tmp_path):
    world, server, seed, flags = served_world
    placement = [p for p in world.placements if p != "no-such-placement"][0]
    decision = world.decisions[0]
    output = tmp_path / "audience.jsonl"
    result = batch(world, "--audience", "*", "--scope", f"{decision}:{placement}:3", "--output", output, *flags)
    assert result.returncode == 0, result.stderr.decode()
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(world.profiles)
    for profile, line in zip(world.profiles, lines):
        primary = profile["identities"][0]
        ours = json_format.Parse(line, stubs.pb.DecideResponse())
        assert ours.request_id == f"{primary['namespace']}:{primary['id']}"
        request = stubs.pb.DecideRequest(request_id=ours.request_id)
        request.identity.namespace, request.identity.id = primary["namespace"], primary["id"]
        request.scopes.add(decision_id=decision, placement_id=placement, item_count=3)
        assert comparable(stubs.pb, ours, False) == comparable(stubs.pb, decide(stubs, server.target, request), False)
    summary = result.stderr.decode()
    assert f"{len(world.profiles)} decided, 0 error lines" in summary


def test_single_decide_equals_the_servers_answer(stubs, served_world):
    world, server, seed, flags = served_world
    for namespace, identity in random.Random(seed).sample(world.identities, min(5, len(world.identities))):
        if ":" in namespace:
            continue
        scopes = [(world.decisions[0], world.placements[0], 2), (world.decisions[-2], world.placements[1], 1)]
        args = ["decide", "--catalog", world.catalog, "--snapshot", world.snapshot, "--id", f"{namespace}:{identity}",
                "--context", "page=home", "--context", "cartValue:=12.5", "--explain", *flags]
        for d, p, n in scopes:
            args += ["--scope", f"{d}:{p}:{n}"]
        result = run(*args)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().count("\n") == 1
        ours = json_format.Parse(result.stdout, stubs.pb.DecideResponse())
        request = stubs.pb.DecideRequest(explain=True)
        request.identity.namespace, request.identity.id = namespace, identity
        request.context["page"].string_value = "home"
        request.context["cartValue"].number_value = 12.5
        for d, p, n in scopes:
            request.scopes.add(decision_id=d, placement_id=p, item_count=n)
        assert comparable(stubs.pb, ours, True) == comparable(stubs.pb, decide(stubs, server.target, request), True)


@pytest.fixture(scope="module")
def examples_world(tmp_path_factory):
    return make_world("examples", tmp_path_factory.mktemp("examples"), 9)


def test_output_is_identical_whatever_the_threads(stubs, examples_world, tmp_path):
    world = examples_world
    rng = random.Random(21)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(as_json_line(r, rng) + "\n" for r in random_requests(stubs.pb, world, rng, 3000)))
    outputs = []
    for threads in [1, 2, 3, 8]:
        output = tmp_path / f"out-{threads}.jsonl"
        result = batch(world, "--input", source, "--output", output, "--threads", threads)
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(UUID.sub('"U"', output.read_text(encoding="utf-8")))
    assert all(output == outputs[0] for output in outputs)
    # In input order: request ids as written, a generated one where the request had none.
    ids = [json.loads(line)["requestId"] for line in outputs[0].splitlines()]
    expected = [json.loads(line).get("requestId", json.loads(line).get("request_id", "U")) or "U"
                for line in source.read_text().splitlines()]
    assert ids == expected

    audience = []
    for threads in [1, 4]:
        result = batch(world, "--audience", "*", "--scope", "dec-homepage:web-banner:2", "--scope",
                       "dec-newsletter:email-hero", "--output", "-", "--threads", threads)
        assert result.returncode == 0
        audience.append(UUID.sub('"U"', result.stdout.decode()))
    assert audience[0] == audience[1] and audience[0].count("\n") == 300


def test_bad_lines_get_error_lines_and_the_run_goes_on(examples_world, tmp_path):
    world = examples_world
    good = json.dumps({"requestId": "ok", "identity": {"namespace": "ECID", "id": "ecid-1"},
                       "scopes": [{"decisionId": "dec-homepage", "placementId": "web-banner"}]})
    lines = [good, "", "{not json", json.dumps({"requestId": "unknown-field", "identty": {}}),
             json.dumps({"request_id": "too-many", "identity": {"namespace": "n", "id": "i"},
                         "scopes": [{"decision_id": "d", "placement_id": "p", "item_count": 31}]}),
             '{"requestId":"nul","identity":{"namespace":"a\\u0000","id":"i"},"scopes":[]}', good]
    source = tmp_path / "bad.jsonl"
    source.write_bytes(("\n".join(lines) + "\n").encode() + b'{"requestId":"bad-utf8 \xc3\x28"}\n')
    result = batch(world, "--input", "-", "--output", "-", input=source.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o["requestId"] for o in out] == ["ok", "", "unknown-field", "too-many", "nul", "ok", ""]
    errors = [o for o in out if "error" in o]
    assert [e["line"] for e in errors] == [3, 4, 5, 6, 8]
    assert all(e["error"]["code"] == "invalid_argument" for e in errors)
    assert errors[1]["error"]["message"] == 'unknown field "identty"'
    assert errors[2]["error"]["message"] == "scopes[0].item_count 31 exceeds 30"
    assert errors[3]["error"]["message"] == "identity.namespace contains a NUL character"
    assert "invalid UTF-8" in errors[4]["error"]["message"]
    assert "2 decided, 5 error lines" in result.stderr.decode()


def test_unreadable_input_and_unwritable_output_stop_the_run(examples_world, tmp_path):
    world = examples_world
    missing = tmp_path / "missing.jsonl"
    output = tmp_path / "out.jsonl"
    result = batch(world, "--input", missing, "--output", output)
    assert result.returncode == 1
    assert f"cannot read {missing}: No such file or directory" in result.stderr.decode()
    assert not output.exists()
    result = batch(world, "--input", tmp_path, "--output", output)
    assert result.returncode == 1 and f"cannot read {tmp_path}: Is a directory" in result.stderr.decode()

    source = tmp_path / "in.jsonl"
    source.write_text("")
    unwritable = tmp_path / "no-such-dir" / "out.jsonl"
    result = batch(world, "--input", source, "--output", unwritable)
    assert result.returncode == 1
    assert f"cannot write {unwritable}: No such file or directory" in result.stderr.decode()
    if pathlib.Path("/dev/full").exists():
        result = batch(world, "--audience", "*", "--scope", "dec-homepage:web-banner", "--output", "/dev/full")
        assert result.returncode == 1
        assert "cannot write /dev/full: No space left on device" in result.stderr.decode()


def test_empty_input_and_empty_audience(examples_world, tmp_path):
    world = examples_world
    source = tmp_path / "empty.jsonl"
    source.write_text("")
    output = tmp_path / "out.jsonl"
    result = batch(world, "--input", source, "--output", output)
    assert result.returncode == 0 and output.read_bytes() == b""
    assert "0 decided, 0 error lines" in result.stderr.decode()
    result = batch(world, "--audience", "nobody-is-in-this", "--scope", "dec-homepage:web-banner", "--output", "-")
    assert result.returncode == 0 and result.stdout == b""
    # A named audience: its members only, in source order.
    result = batch(world, "--audience", "vip", "--scope", "dec-homepage:web-banner", "--output", "-")
    members = [f"{p['identities'][0]['namespace']}:{p['identities'][0]['id']}" for p in world.profiles
               if "vip" in p.get("audiences", [])]
    assert members and [json.loads(line)["requestId"] for line in result.stdout.decode().splitlines()] == members


def test_personalization_opt_out_gets_only_the_fallback(tmp_path):
    world = make_world("fixtures", tmp_path, 0)
    out = batch(world, "--audience", "*", "--scope", "dec-home:web-banner:3", "--scope", "dec-formula:web-banner:2",
                "--output", "-")
    assert out.returncode == 0
    by_id = {json.loads(line)["requestId"]: json.loads(line) for line in out.stdout.decode().splitlines()}
    opted_out = by_id["ECID:optout-perso"]
    for p in opted_out["propositions"]:
        assert p["outcome"] == "OUTCOME_FALLBACK" and p["reason"] == "REASON_PERSONALIZATION_DENIED"
        assert [i["id"] for i in p["items"]] == ["fb-generic"]
    line = json.dumps({"identity": {"namespace": "ecid", "id": "optout-perso"}, "explain": True,
                       "includeMetadata": True, "scopes": [{"decisionId": "dec-home", "placementId": "web-banner"}]})
    out = batch(world, "--input", "-", "--output", "-", input=(line + "\n").encode())
    [p] = json.loads(out.stdout)["propositions"]
    assert p["outcome"] == "OUTCOME_FALLBACK" and [i["id"] for i in p["items"]] == ["fb-generic"]
    # Explain says consent decided, and names no offer.
    assert p["trace"] == [{"verdict": "personalization-denied",
                           "detail": 'personalization consent is denied: personalize.content is "n"'}]
