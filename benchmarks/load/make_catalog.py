#!/usr/bin/env python3
"""Writes the benchmark catalog: 1,000 offers in 10 tag collections, an
eligibility rule on every offer, and decisions with priority- and
formula-ranked criteria over the attributes `offerd profiles generate` makes."""

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


def main(path):
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
            "eligibility": condition(i),
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
    main(sys.argv[1])
