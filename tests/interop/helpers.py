"""Small builders shared by the interop tests."""

import struct
import subprocess

import grpc

DECIDE = "/offerd.v1.Decisioning/Decide"


def request(pb, ns="ECID", id="4711", scopes=(("dec-home", "web-banner", 1),), **kwargs):
    req = pb.DecideRequest(**kwargs)
    req.identity.namespace = ns
    req.identity.id = id
    for decision_id, placement_id, count in scopes:
        req.scopes.add(decision_id=decision_id, placement_id=placement_id, item_count=count)
    return req


def decide(stubs, target, req, timeout=10, metadata=None):
    with grpc.insecure_channel(target) as channel:
        stub = stubs.pb_grpc.DecisioningStub(channel)
        return stub.Decide(req, timeout=timeout, metadata=metadata)


def decide_error(stubs, target, req, **kwargs):
    try:
        decide(stubs, target, req, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded")


def raw_call(target, payload, path=DECIDE, timeout=10, compression=None):
    """Sends bytes as the request message; returns (status code, details, response bytes)."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        try:
            response = call(payload, timeout=timeout, compression=compression)
            return grpc.StatusCode.OK, "", response
        except grpc.RpcError as e:
            return e.code(), e.details(), None


def item_ids(proposition):
    return [item.id for item in proposition.items]


def grpc_frame(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def nghttp(url, body_path=None, headers=(), method="POST"):
    args = ["nghttp", "-v", "-H", f":method: {method}"]
    for h in headers:
        args += ["-H", h]
    if body_path is not None:
        args += ["-d", str(body_path)]
    args.append(url)
    return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=30)
