#!/usr/bin/env python3
"""Writes gRPC-framed DecideRequest bodies for h2load, one file per profile:
make_requests.py OUTDIR COUNT PROFILES SCOPES [PAGE]. Profiles are `ecid-<n>` as
made by `offerd profiles generate`, spread over the whole snapshot. Scope `s` asks
for 3 items of `dec-bench` in placement `s % 3` (up to 30 scopes: later scopes get
the offers earlier ones left); `context.page` is PAGE (default `home`).
With OFFERD_CONNECT_BODIES=1 each request is also written as a Connect unary body:
`req-S-N.proto` (the message, unframed) and `req-S-N.json` (protobuf's JSON mapping).
With OFFERD_ONE_FILE=1 the framed bodies go one after another into one file, `req-S-all.bin`, instead
(offerd-loadgen --bodies): a body per profile for many thousands of profiles."""

import os
import pathlib
import struct
import sys
import tempfile

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main(outdir, count, profiles, scopes, page="home"):
    stubs = pathlib.Path(tempfile.mkdtemp(prefix="offerd-bench-stubs-"))
    if protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={stubs}", "offerd/v1/decisioning.proto"]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, str(stubs))
    import offerd.v1.decisioning_pb2 as pb
    from google.protobuf import json_format

    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    placements = ["web-banner", "email-hero", "app-card"]
    step = max(1, profiles // count)
    one_file = os.environ.get("OFFERD_ONE_FILE") == "1"
    framed_bodies = []
    for n in range(count):
        request = pb.DecideRequest()
        request.identity.namespace = "ECID"
        request.identity.id = f"ecid-{(n * step + 7) % profiles}"
        for s in range(scopes):
            request.scopes.add(decision_id="dec-bench", placement_id=placements[s % len(placements)], item_count=3)
        request.context["page"].string_value = page
        payload = request.SerializeToString()
        framed = struct.pack(">BI", 0, len(payload)) + payload
        if one_file:
            framed_bodies.append(framed)
            continue
        (out / f"req-{scopes}-{n}.bin").write_bytes(framed)
        if os.environ.get("OFFERD_CONNECT_BODIES") == "1":
            (out / f"req-{scopes}-{n}.proto").write_bytes(payload)
            (out / f"req-{scopes}-{n}.json").write_text(json_format.MessageToJson(request, indent=None))
    if one_file:
        (out / f"req-{scopes}-all.bin").write_bytes(b"".join(framed_bodies))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
