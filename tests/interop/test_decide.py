"""Decision outcomes over the wire, with grpcio as the client."""

import grpc

from helpers import decide, item_ids, request


def outcome(stubs, name):
    return stubs.pb.Outcome.Value(name)


def reason(stubs, name):
    return stubs.pb.Reason.Value(name)


def test_offers_best_first_with_versions(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 3)], request_id="req-1"))
    assert r.request_id == "req-1"
    assert r.profile_found
    assert r.catalog_version == "interop-1"
    assert r.snapshot_version == "snap-1"
    [p] = r.propositions
    assert p.decision_id == "dec-home" and p.placement_id == "web-banner"
    assert p.outcome == outcome(stubs, "OUTCOME_OFFERS")
    assert p.reason == reason(stubs, "REASON_UNSPECIFIED")
    # vip (80) > gold (50, capped 1 < 3) > paris (30); draft and expired never proposed.
    assert item_ids(p) == ["offer-vip", "offer-gold-10", "offer-paris"]
    assert len(p.proposition_id) == 36
    assert all(not item.HasField("score") for item in p.items)
    assert p.items[0].content == "" and p.items[0].name == ""


def test_generated_request_id_and_unique_proposition_ids(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 1), ("dec-home", "app-card", 1)]))
    assert len(r.request_id) == 36
    ids = {p.proposition_id for p in r.propositions}
    assert len(ids) == 2


def test_content_and_metadata_flags(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, include_content=True, include_metadata=True))
    item = r.propositions[0].items[0]
    assert item.id == "offer-vip"
    assert item.content == "<b>VIP</b>"
    assert item.format == "text/html"
    assert list(item.language) == ["en-us"]
    assert item.link_url == "https://example.com/vip"
    assert item.name == "VIP lounge"
    assert item.priority == 80
    assert dict(item.characteristics) == {"margin": "5"}


def test_formula_ranking_sets_score(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-formula", "web-banner", 2)]))
    p = r.propositions[0]
    assert item_ids(p) == ["offer-paris", "offer-gold-10"]
    assert [item.score for item in p.items] == [40.0, 24.0]
    assert all(item.HasField("score") for item in p.items)


def test_personalization_opt_out_gets_only_the_fallback(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="optout-perso",
                                             scopes=[("dec-home", "web-banner", 3), ("dec-formula", "web-banner", 3),
                                                     ("dec-home", "email-hero", 2), ("dec-home", "app-card", 1)],
                                             allow_duplicates=True))
    for p in r.propositions:
        assert p.outcome == outcome(stubs, "OUTCOME_FALLBACK"), p
        assert p.reason == reason(stubs, "REASON_PERSONALIZATION_DENIED")
        assert item_ids(p) == ["fb-generic"]


def test_personalization_opt_out_without_fallback_is_suppressed(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="optout-perso", scopes=[("dec-nofallback", "web-banner", 1)]))
    p = r.propositions[0]
    assert p.outcome == outcome(stubs, "OUTCOME_SUPPRESSED")
    assert p.reason == reason(stubs, "REASON_PERSONALIZATION_DENIED")
    assert len(p.items) == 0


def test_unsubscribed_channel_gets_nothing(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="email-unsub",
                                             scopes=[("dec-home", "email-hero", 2), ("dec-home", "web-banner", 1),
                                                     ("dec-home", "sms-text", 1)]))
    email, web, sms = r.propositions
    assert email.outcome == outcome(stubs, "OUTCOME_SUPPRESSED")
    assert email.reason == reason(stubs, "REASON_MARKETING_DENIED")
    assert len(email.items) == 0
    assert web.outcome == outcome(stubs, "OUTCOME_OFFERS")
    assert sms.outcome == outcome(stubs, "OUTCOME_OFFERS")


def test_marketing_any_no_beats_channel_yes(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="any-n",
                                             scopes=[("dec-home", "email-hero", 1), ("dec-home", "sms-text", 1),
                                                     ("dec-home", "app-card", 1)]))
    email, sms, app = r.propositions
    for p in (email, sms):
        assert p.outcome == outcome(stubs, "OUTCOME_SUPPRESSED")
        assert p.reason == reason(stubs, "REASON_MARKETING_DENIED")
        assert len(p.items) == 0
    # app is not a marketing channel
    assert app.outcome == outcome(stubs, "OUTCOME_OFFERS")
    assert item_ids(app) == ["offer-generic-5"]


def test_capped_offer_is_not_proposed(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="capped", scopes=[("dec-home", "web-banner", 3)]))
    assert item_ids(r.propositions[0]) == ["offer-generic-5"]


def test_unknown_profile_is_decided_with_defaults(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="nobody", scopes=[("dec-home", "web-banner", 3)]))
    assert not r.profile_found
    assert item_ids(r.propositions[0]) == ["offer-generic-5"]


def test_namespace_is_case_insensitive_and_secondary_identity_works(stubs, server):
    r1 = decide(stubs, server.target, request(stubs.pb, ns="ecid"))
    r2 = decide(stubs, server.target, request(stubs.pb, ns="EMAIL", id="ana@example.com"))
    assert r1.profile_found and r2.profile_found
    assert item_ids(r1.propositions[0]) == item_ids(r2.propositions[0]) == ["offer-vip"]
    r3 = decide(stubs, server.target, request(stubs.pb, id="4711 "))
    assert not r3.profile_found


def test_per_scope_errors_do_not_fail_the_call(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-nope", "web-banner", 1), ("dec-formula", "email-hero", 1),
                                                                ("dec-draft", "web-banner", 1), ("dec-home", "web-banner", 1)]))
    missing, wrong_placement, draft, good = r.propositions
    assert (missing.outcome, missing.reason) == (outcome(stubs, "OUTCOME_ERROR"), reason(stubs, "REASON_DECISION_NOT_FOUND"))
    assert (wrong_placement.outcome, wrong_placement.reason) == (
        outcome(stubs, "OUTCOME_ERROR"), reason(stubs, "REASON_PLACEMENT_NOT_IN_DECISION"))
    assert (draft.outcome, draft.reason) == (outcome(stubs, "OUTCOME_ERROR"), reason(stubs, "REASON_DECISION_INACTIVE"))
    assert good.outcome == outcome(stubs, "OUTCOME_OFFERS")


def test_deduplication_across_scopes_unless_allowed(stubs, server):
    scopes = [("dec-home", "web-banner", 3), ("dec-nofallback", "web-banner", 1)]
    r = decide(stubs, server.target, request(stubs.pb, id="plain", scopes=scopes))
    first, second = r.propositions
    assert item_ids(first) == ["offer-generic-5"]
    assert second.outcome == outcome(stubs, "OUTCOME_SUPPRESSED")
    assert second.reason == reason(stubs, "REASON_NO_ELIGIBLE_OFFERS")
    r = decide(stubs, server.target, request(stubs.pb, id="plain", scopes=scopes, allow_duplicates=True))
    assert item_ids(r.propositions[1]) == ["offer-generic-5"]


def test_context_values_are_accepted(stubs, server):
    req = request(stubs.pb)
    req.context["page"].string_value = "home"
    req.context["cart"].number_value = 3.5
    req.context["logged"].bool_value = True
    req.context["nothing"].SetInParent()
    r = decide(stubs, server.target, req)
    assert r.propositions[0].outcome == outcome(stubs, "OUTCOME_OFFERS")


def test_explain_trace(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 1)], explain=True))
    trace = {(t.offer_id, t.verdict) for t in r.propositions[0].trace}
    assert ("offer-vip", "chosen") in trace
    assert ("offer-draft", "not-approved") in trace
    assert ("offer-expired", "outside-dates") in trace
    assert ("offer-gold-10", "ranked-out") in trace
    assert all(t.criterion == "0" for t in r.propositions[0].trace)
    # Each entry names its criterion's collection; a priority ranking gives no score.
    assert all(t.collection_id == "col-all" for t in r.propositions[0].trace)
    assert not any(t.HasField("score") for t in r.propositions[0].trace)


def test_explain_trace_carries_formula_scores(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, scopes=[("dec-formula", "web-banner", 2)], explain=True))
    proposition = r.propositions[0]
    entries = {t.offer_id: t for t in proposition.trace}
    # number(offer.characteristics.margin) * 2: the candidates that reached the ranking carry their score.
    assert entries["offer-paris"].verdict == "chosen" and entries["offer-paris"].score == 40
    assert entries["offer-gold-10"].verdict == "chosen" and entries["offer-gold-10"].score == 24
    assert entries["offer-generic-5"].verdict == "ranked-out" and entries["offer-generic-5"].score == 2
    assert not entries["offer-draft"].HasField("score") and not entries["offer-expired"].HasField("score")
    # The items' scores are the trace's.
    assert [(i.id, i.score) for i in proposition.items] == [("offer-paris", 40), ("offer-gold-10", 24)]


def test_explain_says_why_consent_decided(stubs, server):
    r = decide(stubs, server.target, request(stubs.pb, id="optout-perso", explain=True,
                                             scopes=[("dec-home", "web-banner", 1), ("dec-home", "email-hero", 1)]))
    for proposition in r.propositions:
        assert proposition.reason == stubs.pb.REASON_PERSONALIZATION_DENIED
        assert len(proposition.trace) == 1
        entry = proposition.trace[0]
        assert (entry.offer_id, entry.criterion, entry.collection_id) == ("", "", "")
        assert entry.verdict == "personalization-denied"
        assert entry.detail == 'personalization consent is denied: personalize.content is "n"'
    unsubscribed = decide(stubs, server.target, request(stubs.pb, id="email-unsub", explain=True,
                                                        scopes=[("dec-home", "email-hero", 1)]))
    entry, = unsubscribed.propositions[0].trace
    assert entry.verdict == "marketing-denied"
    assert entry.detail == 'marketing consent for the email channel is denied: marketing.email is "n"'


def test_many_concurrent_calls_on_one_connection(stubs, server):
    with grpc.insecure_channel(server.target) as channel:
        stub = stubs.pb_grpc.DecisioningStub(channel)
        futures = [stub.Decide.future(request(stubs.pb, request_id=f"c{i}"), timeout=20) for i in range(300)]
        results = [f.result() for f in futures]
    assert [r.request_id for r in results] == [f"c{i}" for i in range(300)]
    assert all(item_ids(r.propositions[0]) == ["offer-vip"] for r in results)


def test_largest_valid_request(stubs, server):
    # 30 scopes, 99 items in total (item_count 0 counts as 1), 64 context entries.
    scopes = [("dec-home", "web-banner", 4)] * 23 + [("dec-home", "app-card", 0)] * 7
    req = request(stubs.pb, scopes=scopes, allow_duplicates=True, include_content=True, include_metadata=True)
    for i in range(64):
        req.context[f"k{i}"].string_value = "v" * 100
    r = decide(stubs, server.target, req)
    assert len(r.propositions) == 30
    assert item_ids(r.propositions[0]) == ["offer-vip", "offer-gold-10", "offer-paris", "offer-generic-5"]
    assert item_ids(r.propositions[29]) == ["offer-generic-5"]
