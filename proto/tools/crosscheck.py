#!/usr/bin/env python3
"""Cross-checks offerd's protobuf-c code against the reference protobuf implementation (Python).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install grpcio-tools
    /tmp/venv/bin/python proto/tools/crosscheck.py request             # hex of the fixture DecideRequest
    /tmp/venv/bin/python proto/tools/crosscheck.py response-fixture    # hex of the fixture DecideResponse
    /tmp/venv/bin/python proto/tools/crosscheck.py response HEX        # decodes a DecideResponse, prints JSON

Both fixtures are what Tests/OfferdWireTests/PythonFixtureTests.swift decodes. It is generated from the
canonical .proto (with proto3 `optional`), not from the synthetic-oneof copy protoc-c compiles.
"""
import json
import os
import subprocess
import sys
import tempfile

PROTO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_module():
    out = tempfile.mkdtemp()
    subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
                           "offerd/v1/decisioning.proto"])
    sys.path.insert(0, out)
    from offerd.v1 import decisioning_pb2  # noqa: E402
    return decisioning_pb2


def fixture_request(pb):
    request = pb.DecideRequest(request_id="py-req-é", allow_duplicates=True, include_content=True,
                               include_metadata=False, dry_run=True, explain=False)
    request.identity.namespace = "Email"
    request.identity.id = "ana@example.com"
    request.scopes.add(decision_id="decision-a", placement_id="web-banner", item_count=3)
    request.scopes.add(decision_id="décision-b", placement_id="email-hero")
    request.context["page.type"].string_value = "product 🙂"
    request.context["cartValue"].number_value = -12.75
    request.context["loggedIn"].bool_value = True
    request.context["nothing"].SetInParent()  # a ContextValue with no kind: null
    return request


def fixture_response(pb):
    response = pb.DecideResponse(request_id="py-resp", profile_found=True, catalog_version="cat-1",
                                 snapshot_version="snap-ü")
    offers = response.propositions.add(proposition_id="11111111-2222-4333-8444-555555555555", decision_id="d",
                                       placement_id="p", outcome=pb.OUTCOME_OFFERS, reason=pb.REASON_UNSPECIFIED)
    offers.items.add(id="scored-zero", format="text/html", content="<b>x</b>", delivery_url="https://d",
                     link_url="https://l", language=["en", "fr"], name="Zero", priority=-5, score=0.0)
    offers.items[0].characteristics["margin"] = "0.3"
    offers.items.add(id="unscored", priority=7)
    offers.trace.add(offer_id="scored-zero", criterion="0", verdict="chosen")
    response.propositions.add(proposition_id="p2", decision_id="d2", placement_id="sms",
                              outcome=pb.OUTCOME_SUPPRESSED, reason=pb.REASON_MARKETING_DENIED)
    return response


def main():
    pb = load_module()
    if sys.argv[1:2] == ["request"]:
        print(fixture_request(pb).SerializeToString(deterministic=True).hex())
    elif sys.argv[1:2] == ["response-fixture"]:
        print(fixture_response(pb).SerializeToString(deterministic=True).hex())
    elif sys.argv[1:2] == ["response"]:
        response = pb.DecideResponse.FromString(bytes.fromhex(sys.argv[2]))
        print(json.dumps({
            "request_id": response.request_id,
            "profile_found": response.profile_found,
            "catalog_version": response.catalog_version,
            "snapshot_version": response.snapshot_version,
            "propositions": [{
                "proposition_id": p.proposition_id, "decision_id": p.decision_id, "placement_id": p.placement_id,
                "outcome": pb.Outcome.Name(p.outcome), "reason": pb.Reason.Name(p.reason),
                "items": [{
                    "id": i.id, "format": i.format, "content": i.content, "delivery_url": i.delivery_url,
                    "link_url": i.link_url, "language": list(i.language), "name": i.name, "priority": i.priority,
                    "characteristics": dict(i.characteristics),
                    "score": i.score if i.HasField("score") else None,
                } for i in p.items],
                "trace": [[t.offer_id, t.criterion, t.verdict] for t in p.trace],
            } for p in response.propositions],
        }, ensure_ascii=False, indent=1))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
