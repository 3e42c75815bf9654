#!/usr/bin/env bash
# Installs what building and testing offerd needs on Debian 12, skipping what is already there.
set -euo pipefail

apt_packages=(
    libnghttp2-dev        # HTTP/2 framing (CNGHTTP2)
    libprotobuf-c-dev     # protobuf wire format runtime (COfferdProto)
    protobuf-c-compiler   # protoc-c, to check the committed generated code
    protobuf-compiler     # protoc, for the committed FileDescriptorSet (proto/generate.sh)
    curl                  # Connect and gRPC-Web over HTTP/1.1 and HTTP/2 in the interop tests
    openssl               # test CAs and certificates made at test time (TLS tests)
    libxxhash-dev         # snapshot checksum
    nghttp2-client        # nghttp and h2load, real HTTP/2 clients for tests and benchmarks
    nginx                 # a real API gateway in front of offerd in the interop tests
    haproxy               # HAProxy with an h2 backend in front of offerd (tests/interop/test_gateways_tls.py)
    nghttp2-proxy         # nghttpx in front of offerd over TLS (tests/interop/test_gateways_tls.py)
    chromium              # headless browser running examples/browser (tests/interop/test_browser.py)
    libhiredis-dev        # Redis client for the shared event log (CHiredis)
    redis-server          # a real Redis for the event log tests
)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--with-python" ]; then
    if ! python3 -c "import grpc, grpc_tools, grpc_reflection, pytest, h2, jsonschema" 2>/dev/null; then
        echo "installing Python packages: grpcio grpcio-tools grpcio-reflection pytest h2 jsonschema"
        python3 -m pip install -q --disable-pip-version-check grpcio grpcio-tools grpcio-reflection pytest h2 \
            jsonschema
    fi
fi
