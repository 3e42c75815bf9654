#!/usr/bin/env python3
"""Writes a benchmark catalog over the attributes `offerd profiles generate` makes:
make_catalog.py OUT [SHAPE].

SHAPE `bench` (the default): 1,000 offers in 10 tag collections, an eligibility rule on every offer, and decisions
whose scopes rank one collection by a formula over the offer alone (folded at load), then another by priority.

SHAPE `real`: what a retailer writes (issue 15's workload). 1,000 approved offers in 10 tag collections of 100, each
with its own eligibility condition on a profile attribute and a context value; every scope's first criterion ranks a
collection by priority on checkout pages only, its second ranks another collection by a formula over the offer and
the profile (`offer.priority + number(offer.characteristics.margin) * 2 + profile.loyalty.points / 1000`), which
cannot be folded at load. A request with `context.page = "checkout"` is answered by the priority criterion, any
other page by the formula criterion."""

import json
import sys

OFFERS = 1000
COLLECTIONS = 10


def condition(i):
    kind = i % 4
    if kind == 0:
        return {"condition": f"profile.loyalty.points >= {(i * 37) % 5000}"}
    if kind == 1:
        return {"condition": 'profile.loyalty.tier in ["gold", "platinum"] or inAudience("vip")'}
    if kind == 2:
        return {"condition": 'context.page = "home" and not inAudience("churn-risk")'}
    return {"rule": f"rule-{i % 20}"}


def real_condition(i):
    return {"condition": f'profile.loyalty.points >= {(i * 37) % 4000} and context.page != "blocked-{i % 7}"'}


REAL_FORMULA = "offer.priority + number(offer.characteristics.margin) * 2 + profile.loyalty.points / 1000"


def main(path, shape="bench"):
    if shape not in ("bench", "real"):
        sys.exit(f"unknown shape {shape!r}: bench or real")
    real = shape == "real"
    placements = [
        {"id": "web-banner", "channel": "web", "contentType": "html"},
        {"id": "email-hero", "channel": "email", "contentType": "html"},
        {"id": "app-card", "channel": "app", "contentType": "json"},
    ]
    offers = []
    for i in range(OFFERS):
        offers.append({
            "id": f"offer-{i}",
            "name": f"Offer {i}",
            "status": "approved",
            "priority": (i * 7919) % 100,
            "tags": [f"c{i % COLLECTIONS}"],
            "characteristics": {"margin": str((i * 13) % 50)},
            "eligibility": real_condition(i) if real else condition(i),
            "capping": [{"limit": 5}],
            "representations": [
                {"placement": p["id"], "format": "text/html", "content": f"<p>offer {i} for {p['id']}</p>"}
                for p in placements
            ],
        })
    rules = [{"id": f"rule-{k}", "condition": f'profile.homeAddress.city != null and profile.loyalty.points > {k * 100}'}
             for k in range(20)]
    collections = [{"id": f"col-{k}", "anyTags": [f"c{k}"]} for k in range(COLLECTIONS)]
    fallback = {"id": "fallback", "representations": [{"placement": p["id"], "content": "hello"} for p in placements]}

    def scope(placement, k):
        if real:
            return {"placement": placement, "criteria": [
                {"collection": f"col-{k}", "eligibility": {"condition": 'context.page = "checkout"'}},
                {"collection": f"col-{(k + 1) % COLLECTIONS}",
                 "ranking": {"method": "formula", "formula": REAL_FORMULA}},
            ]}
        return {"placement": placement, "criteria": [
            {"collection": f"col-{k}", "ranking": {"method": "formula",
                                                    "formula": "number(offer.characteristics.margin) * 2 + offer.priority"}},
            {"collection": f"col-{(k + 1) % COLLECTIONS}"},
        ]}

    decisions = [
        {"id": "dec-bench", "status": "live", "fallback": "fallback",
         "scopes": [scope("web-banner", 0), scope("email-hero", 3), scope("app-card", 6)]},
    ]
    catalog = {"version": "bench-1", "placements": placements, "offers": offers, "fallbackOffers": [fallback],
               "collections": collections, "rules": rules, "decisions": decisions}
    with open(path, "w") as f:
        json.dump(catalog, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
