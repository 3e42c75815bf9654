"""`offerd catalog check` warnings, through the real command line: each silent mistake of a catalog that loads is
reported with its JSON path and why, the exit status stays 0 unless `--strict`, and `--snapshot` adds what only
the profiles can tell (profile paths and audiences no profile has)."""

import json
import re
import subprocess

from conftest import OFFERD, ROOT, build_snapshot

PROFILES = [
    {"identities": [{"namespace": "ECID", "id": "1"}], "audiences": ["vip", "cart-abandoner"],
     "attributes": {"loyalty": {"tier": "gold"}, "ltv": 1200}},
    {"identities": [{"namespace": "ECID", "id": "2"}], "audiences": [],
     "attributes": {"loyalty": {"tier": "silver"}, "ltv": 80}},
]

FORMULA_PATH = "decisions[0].scopes[0].criteria[0].ranking.formula"


def retailer(formula="number(offer.characteristics.margin) * 2 + offer.priority",
             criterion_condition='profile.loyalty.tier = "gold"', audience="cart-abandoner", extra_rule=False,
             extra_offer=False):
    def offer(id, margin, **fields):
        return {"id": id, "status": "approved", "priority": 10, "characteristics": {"margin": margin},
                "representations": [{"placement": "home", "content": id}], **fields}

    offers = [offer("o-gold", "3.5"), offer("o-cart", "1.2", eligibility={"anyAudiences": [audience]})]
    if extra_offer:
        offers.append(offer("o-forgotten", "1"))
    rules = [{"id": "gold", "condition": criterion_condition}]
    if extra_rule:
        rules.append({"id": "unused", "condition": "profile.ltv > 100"})
    return {
        "placements": [{"id": "home", "channel": "web", "contentType": "text"}],
        "rules": rules,
        "offers": offers,
        "collections": [{"id": "all", "offers": ["o-gold", "o-cart"]}],
        "decisions": [{"id": "d", "status": "live", "scopes": [{"placement": "home", "criteria": [
            {"collection": "all", "eligibility": {"rule": "gold"},
             "ranking": {"method": "formula", "formula": formula}}]}]}],
    }


def check(tmp_path, catalog, *args):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return subprocess.run([OFFERD, "catalog", "check", str(path), *args], capture_output=True, text=True,
                          timeout=60)


def snapshot(tmp_path):
    source = tmp_path / "profiles.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PROFILES))
    path = tmp_path / "profiles.snap"
    build_snapshot(source, path, "lint-1")
    return str(path)


def warnings(out):
    return re.findall(r"^\S+: (\S+): warning: (.*)$", out.stderr, re.M)


def test_a_clean_catalog_has_no_warning_even_strict(tmp_path):
    out = check(tmp_path, retailer(), "--strict", "--snapshot", snapshot(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "warnings: 0" in out.stdout and out.stderr == ""


def test_the_shipped_example_catalog_has_only_its_documented_warnings(tmp_path):
    build_snapshot(ROOT / "examples" / "profiles.jsonl", tmp_path / "examples.snap", "ex")
    out = subprocess.run([OFFERD, "catalog", "check", str(ROOT / "examples" / "catalog.json"),
                          "--snapshot", str(tmp_path / "examples.snap")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # docs/catalog.md, "The example catalog", lists both.
    assert [path for path, _ in warnings(out)] == ["rules[1]", "decisions[0].scopes[0].criteria[0].eligibility.anyAudiences[1]"]


def test_a_formula_over_a_string_characteristic(tmp_path):
    out = check(tmp_path, retailer(formula="offer.characteristics.margin * 2"))
    assert out.returncode == 0, out.stderr
    found = warnings(out)
    assert [path for path, _ in found] == [FORMULA_PATH], out.stderr
    assert "write number(offer.characteristics.margin)" in found[0][1]
    assert check(tmp_path, retailer(formula="offer.characteristics.margin * 2"), "--strict").returncode == 2


def test_a_characteristic_key_no_offer_has(tmp_path):
    out = check(tmp_path, retailer(formula="number(offer.characteristics.margn) * 2"))
    assert out.returncode == 0
    assert warnings(out) == [(FORMULA_PATH, 'offer.characteristics.margn: no offer has the characteristic "margn" '
                                            '(did you mean "margin"?), so it is always null')], out.stderr


def test_a_profile_path_typo_needs_the_snapshot(tmp_path):
    catalog = retailer(criterion_condition='profile.loyalty.teir = "gold"')
    assert warnings(check(tmp_path, catalog)) == []
    out = check(tmp_path, catalog, "--snapshot", snapshot(tmp_path))
    assert out.returncode == 0
    found = warnings(out)
    assert [path for path, _ in found] == ["rules[0].condition"], out.stderr
    assert "profile.loyalty.teir: no profile in" in found[0][1]
    assert "did you mean profile.loyalty.tier?" in found[0][1]
    assert check(tmp_path, catalog, "--snapshot", str(tmp_path / "profiles.snap"), "--strict").returncode == 2


def test_an_audience_no_profile_has(tmp_path):
    catalog = retailer(audience="cart-abandonner")
    out = check(tmp_path, catalog, "--snapshot", snapshot(tmp_path))
    assert out.returncode == 0
    found = warnings(out)
    assert [path for path, _ in found] == ["offers[1].eligibility.anyAudiences[0]"], out.stderr
    assert 'audience "cart-abandonner" (did you mean "cart-abandoner"?)' in found[0][1]


def test_unused_rules_and_unreachable_offers(tmp_path):
    out = check(tmp_path, retailer(extra_rule=True, extra_offer=True))
    assert out.returncode == 0
    assert warnings(out) == [
        ("rules[1]", 'rule "unused" is used by no offer and no criterion'),
        ("offers[2]", 'offer "o-forgotten" is in no collection, so no decision can propose it'),
    ], out.stderr
    assert out.stderr.splitlines()[-1].endswith("catalog.json: 2 warnings")


def test_an_unreadable_snapshot_fails_naming_it_once(tmp_path):
    missing = tmp_path / "missing.snap"
    out = check(tmp_path, retailer(), "--snapshot", str(missing))
    assert out.returncode == 1
    assert out.stderr.count("missing.snap") == 1, out.stderr


def test_an_invalid_catalog_still_fails_with_errors_not_warnings(tmp_path):
    catalog = retailer()
    catalog["offers"][0]["status"] = "live"
    out = check(tmp_path, catalog, "--strict")
    assert out.returncode == 1
    assert "warning:" not in out.stderr and "offers[0].status" in out.stderr
