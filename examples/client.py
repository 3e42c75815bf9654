#!/usr/bin/env python3
"""Asks a running offerd for decisions and prints the answer.

    python3 examples/client.py --id 4711 --scope dec-homepage:web-banner:3 --content

Stubs are generated from proto/ into a temporary folder at start, so nothing
generated is committed for Python.
"""

import argparse
import importlib.util
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_stubs():
    out = pathlib.Path(tempfile.mkdtemp(prefix="offerd-stubs-"))
    proto = "offerd/v1/decisioning.proto"
    if protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}", proto]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, str(out))
    import offerd.v1.decisioning_pb2 as pb
    import offerd.v1.decisioning_pb2_grpc as pb_grpc
    return pb, pb_grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--namespace", default="ECID")
    parser.add_argument("--id", required=True)
    parser.add_argument("--scope", action="append", required=True, help="DECISION:PLACEMENT[:ITEMS]")
    parser.add_argument("--content", action="store_true", help="include content and metadata")
    parser.add_argument("--explain", action="store_true", help="ask for a trace (server needs --allow-explain)")
    parser.add_argument("--context", action="append", default=[], help="KEY=VALUE (a string)")
    args = parser.parse_args()

    pb, pb_grpc = load_stubs()
    request = pb.DecideRequest(include_content=args.content, include_metadata=args.content, explain=args.explain)
    request.identity.namespace = args.namespace
    request.identity.id = args.id
    for scope in args.scope:
        parts = scope.split(":")
        request.scopes.add(decision_id=parts[0], placement_id=parts[1],
                           item_count=int(parts[2]) if len(parts) > 2 else 1)
    for entry in args.context:
        key, _, value = entry.partition("=")
        request.context[key].string_value = value

    with grpc.insecure_channel(args.target) as channel:
        try:
            response = pb_grpc.DecisioningStub(channel).Decide(request, timeout=5)
        except grpc.RpcError as error:
            sys.exit(f"{error.code().name}: {error.details()}")
    print(response)


if __name__ == "__main__":
    main()
