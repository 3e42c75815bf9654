"""Every whole-call status of SPEC 2.3, as a grpcio client sees it."""

import grpc
import pytest

from helpers import decide, decide_error, raw_call, request


def test_no_scopes_is_invalid(stubs, server):
    e = decide_error(stubs, server.target, request(stubs.pb, scopes=[]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scopes" in e.details()


def test_too_many_scopes(stubs, server):
    e = decide_error(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 1)] * 31))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_item_count_over_30_names_the_scope(stubs, server):
    e = decide_error(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 1)] * 2 + [("dec-home", "web-banner", 31)]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.details() == "scopes[2].item_count 31 exceeds 30"


def test_more_than_100_items(stubs, server):
    e = decide_error(stubs, server.target, request(stubs.pb, scopes=[("dec-home", "web-banner", 30)] * 4))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("ns,id", [("", "4711"), ("ECID", "")])
def test_missing_identity_parts(stubs, server, ns, id):
    e = decide_error(stubs, server.target, request(stubs.pb, ns=ns, id=id))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_identity(stubs, server):
    req = stubs.pb.DecideRequest()
    req.scopes.add(decision_id="dec-home", placement_id="web-banner", item_count=1)
    e = decide_error(stubs, server.target, req)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("decision,placement", [("", "web-banner"), ("dec-home", "")])
def test_empty_scope_ids(stubs, server, decision, placement):
    e = decide_error(stubs, server.target, request(stubs.pb, scopes=[(decision, placement, 1)]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_too_many_context_entries_and_empty_key(stubs, server):
    req = request(stubs.pb)
    for i in range(65):
        req.context[f"k{i}"].bool_value = True
    assert decide_error(stubs, server.target, req).code() == grpc.StatusCode.INVALID_ARGUMENT
    req = request(stubs.pb)
    req.context[""].bool_value = True
    assert decide_error(stubs, server.target, req).code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_context_number(stubs, server, value):
    req = request(stubs.pb)
    req.context["x"].number_value = value
    assert decide_error(stubs, server.target, req).code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("replacement", [b"\xff\xfeXX", b"X\x00XX", b"\xc0\xafXX"])
def test_bad_strings_are_invalid(stubs, server, replacement):
    payload = request(stubs.pb, id="ZQZQ").SerializeToString()
    assert payload.count(b"ZQZQ") == 1
    code, details, _ = raw_call(server.target, payload.replace(b"ZQZQ", replacement))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


def test_bad_string_in_context_key(stubs, server):
    req = request(stubs.pb)
    req.context["ZQZQ"].bool_value = True
    payload = req.SerializeToString().replace(b"ZQZQ", b"Z\x00QZ")
    code, _, _ = raw_call(server.target, payload)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("payload", [b"\xff", b"\x0a\x05ab", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11])
def test_undecodable_protobuf(server, payload):
    code, _, _ = raw_call(server.target, payload)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_explain_refused_unless_allowed(stubs, strict_server):
    e = decide_error(stubs, strict_server.target, request(stubs.pb, explain=True))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    # INVALID_ARGUMENT wins over PERMISSION_DENIED.
    e = decide_error(stubs, strict_server.target, request(stubs.pb, scopes=[], explain=True))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_the_limit(stubs, server):
    req = request(stubs.pb)
    req.request_id = "x" * (70 * 1024)
    e = decide_error(stubs, server.target, req)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # and the server still answers
    assert decide(stubs, server.target, request(stubs.pb)).profile_found


def test_unknown_method_and_service(server):
    for path in ["/offerd.v1.Decisioning/Nope", "/other.Service/Decide"]:
        code, _, _ = raw_call(server.target, b"", path=path)
        assert code == grpc.StatusCode.UNIMPLEMENTED


def test_compressed_message_is_unimplemented(stubs, server):
    code, _, _ = raw_call(server.target, request(stubs.pb).SerializeToString() * 3, compression=grpc.Compression.Gzip)
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_client_deadline_ends_the_call_with_deadline_exceeded_or_an_answer(stubs, server):
    # A microsecond deadline through grpcio: grpcio's own timer races the server's answer (tens of microseconds on
    # loopback), so which one wins is not ours to assert. What always holds: the call ends, with DEADLINE_EXCEEDED
    # or a whole answer, never another status, and the server keeps serving. The server's own enforcement of
    # grpc-timeout is asserted exactly in test_transport.py (a deadline that has passed before the message arrives).
    for _ in range(20):
        try:
            response = decide(stubs, server.target, request(stubs.pb), timeout=0.000001)
            assert response.profile_found
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    assert decide(stubs, server.target, request(stubs.pb)).profile_found


def test_health(stubs, server):
    for service in ["", "offerd.v1.Decisioning"]:
        payload = stubs.health_pb.HealthCheckRequest(service=service).SerializeToString()
        code, _, response = raw_call(server.target, payload, path="/grpc.health.v1.Health/Check")
        assert code == grpc.StatusCode.OK
        assert stubs.health_pb.HealthCheckResponse.FromString(response).status == stubs.health_pb.HealthCheckResponse.SERVING
    payload = stubs.health_pb.HealthCheckRequest(service="nope").SerializeToString()
    code, _, _ = raw_call(server.target, payload, path="/grpc.health.v1.Health/Check")
    assert code == grpc.StatusCode.NOT_FOUND
