"""Server reflection (SPEC 10): grpcio's reflection client lists the services and resolves offerd's API from the
descriptors offerd serves; the stream answers each request as it arrives; `offerd proto descriptor` writes the
same FileDescriptorSet."""

import queue
import subprocess

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from conftest import OFFERD, ROOT

SERVICES = {
    "offerd.v1.Decisioning",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def test_client_lists_services_and_resolves_decisioning(server):
    with grpc.insecure_channel(server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == SERVICES
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("offerd.v1.Decisioning")
        decide = service.FindMethodByName("Decide")
        assert decide.input_type.full_name == "offerd.v1.DecideRequest"
        assert decide.output_type.full_name == "offerd.v1.DecideResponse"
        item = pool.FindMessageTypeByName("offerd.v1.Item")
        # proto3 `optional` survives: the field has presence.
        assert item.fields_by_name["score"].has_presence
        health = pool.FindServiceByName("grpc.health.v1.Health")
        assert health.FindMethodByName("Check") is not None


def stream(channel, path, requests, timeout=10):
    call = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=timeout))


@pytest.mark.parametrize("path", [V1, V1ALPHA])
def test_each_request_gets_one_response_in_order(server, path):
    requests = [
        reflection_pb2.ServerReflectionRequest(host="h", list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="offerd.v1.Decisioning.Decide"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="offerd.v1.Nope"),
        reflection_pb2.ServerReflectionRequest(all_extension_numbers_of_type="offerd.v1.DecideRequest"),
    ]
    with grpc.insecure_channel(server.target) as channel:
        responses = stream(channel, path, requests)
    assert len(responses) == len(requests)
    for request, response in zip(requests, responses):
        assert response.original_request == request
    assert responses[0].valid_host == "h"
    assert {s.name for s in responses[0].list_services_response.service} == SERVICES
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in responses[1].file_descriptor_response.file_descriptor_proto]
    assert [f.name for f in files] == ["offerd/v1/decisioning.proto"]
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in responses[2].file_descriptor_response.file_descriptor_proto]
    assert [f.name for f in files] == ["grpc/health/v1/health.proto"]
    assert responses[3].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "offerd.v1.Nope" in responses[3].error_response.error_message
    assert responses[4].all_extension_numbers_response.base_type_name == "offerd.v1.DecideRequest"
    assert list(responses[4].all_extension_numbers_response.extension_number) == []


def test_answers_arrive_before_the_client_half_closes(server):
    """Like grpcurl: the next request is sent only after the previous answer came back on the same stream."""
    outgoing = queue.Queue()

    def requests():
        while True:
            item = outgoing.get()
            if item is None:
                return
            yield item

    with grpc.insecure_channel(server.target) as channel:
        call = channel.stream_stream(
            V1,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        responses = call(requests(), timeout=10)
        outgoing.put(reflection_pb2.ServerReflectionRequest(list_services=""))
        first = next(responses)
        assert {s.name for s in first.list_services_response.service} == SERVICES
        outgoing.put(reflection_pb2.ServerReflectionRequest(file_containing_symbol="offerd.v1.Identity"))
        second = next(responses)
        assert len(second.file_descriptor_response.file_descriptor_proto) == 1
        outgoing.put(None)
        assert list(responses) == []
        assert responses.code() == grpc.StatusCode.OK


def test_empty_stream_ends_ok(server):
    with grpc.insecure_channel(server.target) as channel:
        assert stream(channel, V1, []) == []


def test_undecodable_message_ends_the_stream_invalid_argument(server):
    with grpc.insecure_channel(server.target) as channel:
        call = channel.stream_stream(V1, request_serializer=None, response_deserializer=None)
        good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
        responses = call(iter([good, b"\xff\xff\xff"]), timeout=10)
        first = next(responses)
        assert reflection_pb2.ServerReflectionResponse.FromString(first).list_services_response.service
        with pytest.raises(grpc.RpcError) as error:
            next(responses)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_decide_still_unary_next_to_reflection(stubs, server):
    from helpers import decide, request

    with grpc.insecure_channel(server.target) as channel:
        assert stream(channel, V1, [reflection_pb2.ServerReflectionRequest(list_services="")])
    response = decide(stubs, server.target, request(stubs.pb))
    assert len(response.propositions) == 1


def test_proto_descriptor_command_writes_the_served_set(server, tmp_path):
    output = tmp_path / "offerd.binpb"
    subprocess.run([OFFERD, "proto", "descriptor", "--output", str(output)], check=True)
    written = descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())
    names = [f.name for f in written.file]
    assert names == [
        "offerd/v1/decisioning.proto",
        "grpc/health/v1/health.proto",
        "grpc/reflection/v1/reflection.proto",
        "grpc/reflection/v1alpha/reflection.proto",
    ]
    with grpc.insecure_channel(server.target) as channel:
        served = stream(channel, V1, [reflection_pb2.ServerReflectionRequest(file_by_filename="offerd/v1/decisioning.proto")])
    assert served[0].file_descriptor_response.file_descriptor_proto[0] == written.file[0].SerializeToString()


def test_committed_descriptor_set_is_current():
    result = subprocess.run([str(ROOT / "proto" / "generate.sh"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
