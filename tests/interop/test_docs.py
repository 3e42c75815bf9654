"""The documentation tells the truth: every example marked as a catalog, profile lines, a condition or a formula
in README.md and docs/ is loaded by the real `offerd`, and every link points at a file in the repository."""

import json
import pathlib
import re
import subprocess

import pytest

from conftest import OFFERD, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+) (catalog|profiles|condition|formula)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def examples(kind):
    found = []
    for page in PAGES:
        for match in FENCE.finditer(page.read_text()):
            if match.group(2) == kind:
                found.append(pytest.param(match.group(3), id=f"{page.name}:{page.read_text()[:match.start()].count(chr(10)) + 1}"))
    return found


def offerd(*args):
    return subprocess.run([OFFERD, *args], capture_output=True, text=True, timeout=60)


def check_catalog(catalog, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(catalog if isinstance(catalog, str) else json.dumps(catalog))
    return offerd("catalog", "check", str(path))


def catalog_around(condition=None, formula=None):
    """The smallest catalog in which `condition` is an offer's eligibility and `formula` a criterion's ranking."""
    offer = {"id": "o", "status": "approved", "characteristics": {"margin": "0.4"},
             "representations": [{"placement": "p", "content": "x"}]}
    if condition is not None:
        offer["eligibility"] = {"condition": condition}
    criterion = {"collection": "c"}
    if formula is not None:
        criterion["ranking"] = {"method": "formula", "formula": formula}
    return {"placements": [{"id": "p", "channel": "web", "contentType": "text"}], "offers": [offer],
            "collections": [{"id": "c", "offers": ["o"]}],
            "decisions": [{"id": "d", "status": "live", "scopes": [{"placement": "p", "criteria": [criterion]}]}]}


def lines(block):
    return [line for line in block.splitlines() if line.strip()]


def test_the_docs_have_examples_of_every_kind():
    for kind in ["catalog", "profiles", "condition", "formula"]:
        assert examples(kind), f"no {kind} example found in the docs: the extraction is broken"


@pytest.mark.parametrize("catalog", examples("catalog"))
def test_catalog_examples_load(catalog, tmp_path):
    out = check_catalog(catalog, tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("block", examples("condition"))
def test_condition_examples_load(block, tmp_path):
    for condition in lines(block):
        out = check_catalog(catalog_around(condition=condition), tmp_path)
        assert out.returncode == 0, f"{condition}: {out.stderr}"


@pytest.mark.parametrize("block", examples("formula"))
def test_formula_examples_load(block, tmp_path):
    for formula in lines(block):
        out = check_catalog(catalog_around(formula=formula), tmp_path)
        assert out.returncode == 0, f"{formula}: {out.stderr}"


def test_a_broken_example_would_be_caught(tmp_path):
    # The harness itself can fail: a formula over a name that is no path is refused.
    out = check_catalog(catalog_around(formula="if(inAudience(\"vip\"), 2, 1) * margin"), tmp_path)
    assert out.returncode == 1 and "unknown name 'margin'" in out.stderr, out.stderr


@pytest.mark.parametrize("block", examples("profiles"))
def test_profile_examples_build(block, tmp_path):
    source = tmp_path / "profiles.jsonl"
    source.write_text(block)
    out = offerd("snapshot", "build", "--input", str(source), "--output", str(tmp_path / "p.snap"))
    assert out.returncode == 0, out.stderr
    assert f"{len(lines(block))} profiles" in out.stdout + out.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL
        path = target.split("#")[0]
        if not path:
            continue  # an anchor on the same page
        resolved = (page.parent / path).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to a missing file: {target}"


# The JSON Schemas in docs/schema: every catalog and profile line the project ships passes them, and they refuse
# what the loader refuses by shape (so editors flag the same mistakes).

SCHEMAS = ROOT / "docs" / "schema"


def validator(name):
    import jsonschema

    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def shipped_catalogs(tmp_path):
    catalogs = {"examples/catalog.json": json.loads((ROOT / "examples" / "catalog.json").read_text()),
                "tests/interop/fixtures/catalog.json":
                    json.loads((ROOT / "tests" / "interop" / "fixtures" / "catalog.json").read_text())}
    generated = tmp_path / "bench-catalog.json"
    subprocess.run(["python3", str(ROOT / "benchmarks" / "load" / "make_catalog.py"), str(generated)], check=True)
    catalogs["benchmarks/load/make_catalog.py"] = json.loads(generated.read_text())
    for param in examples("catalog"):
        catalogs[param.id] = json.loads(param.values[0])
    return catalogs


def shipped_profile_lines(tmp_path):
    generated = tmp_path / "generated.jsonl"
    out = offerd("profiles", "generate", "--count", "300", "--seed", "7", "--output", str(generated))
    assert out.returncode == 0, out.stderr
    sources = [ROOT / "examples" / "profiles.jsonl", ROOT / "tests" / "interop" / "fixtures" / "profiles.jsonl", generated]
    found = [(f"{s.name}:{n}", line) for s in sources for n, line in enumerate(s.read_text().splitlines(), 1)]
    found += [(param.id, line) for param in examples("profiles") for line in lines(param.values[0])]
    return [(where, json.loads(line)) for where, line in found if line.strip()]


def test_every_shipped_catalog_passes_the_catalog_schema(tmp_path):
    schema = validator("catalog.schema.json")
    for where, catalog in shipped_catalogs(tmp_path).items():
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema.iter_errors(catalog)]
        assert not errors, f"{where}: {errors[:3]}"
        assert check_catalog(catalog, tmp_path).returncode == 0, where


def test_every_shipped_profile_line_passes_the_profile_schema(tmp_path):
    schema = validator("profile.schema.json")
    checked = shipped_profile_lines(tmp_path)
    assert len(checked) > 300
    for where, profile in checked:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema.iter_errors(profile)]
        assert not errors, f"{where}: {errors[:3]}"


@pytest.mark.parametrize("mistake", [
    lambda c: c["placements"][0].update(size="300x250"),            # an unknown key
    lambda c: c["placements"][0].update(channel="mail"),            # not a channel
    lambda c: c["offers"][0].update(priority=5.5),                  # not an integer
    lambda c: c["offers"][0]["capping"].append({"limit": 0}),       # below the minimum
    lambda c: c["offers"][0].update(startDate="2026-13-01"),        # not a timestamp
    lambda c: c["collections"][0].update(offers=["x"]),             # two kinds of collection
    lambda c: c["decisions"][0]["scopes"][0]["criteria"][0].update(ranking={"method": "formula"}),
    lambda c: c["decisions"][0].update(status="running"),
    lambda c: c["offers"][0]["capping"].append({"limit": 1, "period": "year"}),
    lambda c: c["offers"][0]["capping"].append({"limit": 1, "event": "click"}),
    lambda c: c["offers"][0]["capping"].append({"limit": 1, "scope": "session"}),
    lambda c: c["offers"][0].update(capping=[{"limit": 1}] * 11),
], ids=["unknown-key", "channel", "priority", "capping-limit", "timestamp", "collection", "formula", "status",
        "capping-period", "capping-event", "capping-scope", "capping-rules"])
def test_the_catalog_schema_refuses_what_the_loader_refuses(mistake, tmp_path):
    catalog = json.loads(examples("catalog")[0].values[0])
    mistake(catalog)
    assert list(validator("catalog.schema.json").iter_errors(catalog)), "the schema accepted it"
    assert check_catalog(catalog, tmp_path).returncode == 1, "the loader accepted it"


@pytest.mark.parametrize("line", [
    {"identities": []},
    {"identities": [{"namespace": "ECID", "id": "1"}], "consents": {"personalize": {"content": {"val": "yes"}}}},
    {"identities": [{"namespace": "ECID", "id": "1"}], "capping": {"o": -1}},
    {"identities": [{"namespace": "ECID", "id": "1"}], "segments": []},
    {"identities": [{"namespace": "ECID", "id": "1"}], "capping": {"o": {"click": 1}}},
    {"identities": [{"namespace": "ECID", "id": "1"}], "capping": {"o": {"display": -1}}},
    {"identities": [{"namespace": "ECID", "id": "1"}], "capping": {"o": [1]}},
], ids=["no-identity", "consent-value", "negative-count", "unknown-key", "capping-event", "negative-display",
        "capping-list"])
def test_the_profile_schema_refuses_what_the_builder_refuses(line, tmp_path):
    assert list(validator("profile.schema.json").iter_errors(line)), "the schema accepted it"
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps(line) + "\n")
    out = offerd("snapshot", "build", "--input", str(source), "--output", str(tmp_path / "p.snap"))
    assert out.returncode != 0, "the builder accepted it"
