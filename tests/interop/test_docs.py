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
