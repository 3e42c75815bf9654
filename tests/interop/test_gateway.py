"""offerd behind a real API gateway: Debian's nginx with grpc_pass (h2c on both sides)."""

import shutil
import subprocess
import time

import grpc
import pytest

from conftest import free_port
from helpers import decide, decide_error, grpc_frame, nghttp, raw_call, request


@pytest.fixture(scope="module")
def gateway(server, tmp_path_factory):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    d = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://{server.target};
        }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = f"127.0.0.1:{port}"
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with grpc.insecure_channel(target) as ch:
                grpc.channel_ready_future(ch).result(timeout=0.5)
            break
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
    yield target
    proc.terminate()
    proc.wait(timeout=10)


def test_decision_through_nginx(stubs, gateway):
    r = decide(stubs, gateway, request(stubs.pb, scopes=[("dec-home", "web-banner", 3)]))
    assert [i.id for i in r.propositions[0].items] == ["offer-vip", "offer-gold-10", "offer-paris"]
    assert r.snapshot_version == "snap-1"


def test_consent_through_nginx(stubs, gateway):
    r = decide(stubs, gateway, request(stubs.pb, id="optout-perso"))
    assert [i.id for i in r.propositions[0].items] == ["fb-generic"]


def test_invalid_argument_through_nginx(stubs, gateway):
    e = decide_error(stubs, gateway, request(stubs.pb, scopes=[("dec-home", "web-banner", 31)]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.details() == "scopes[0].item_count 31 exceeds 30"


def test_deadline_through_nginx(stubs, gateway, tmp_path):
    # grpc-timeout passes through nginx to offerd, which answers DEADLINE_EXCEEDED for a deadline that has passed
    # by the time the message is dispatched (1 ns). A grpcio client deadline would race grpcio's own timer instead.
    body = tmp_path / "body"
    body.write_bytes(grpc_frame(request(stubs.pb).SerializeToString()))
    out = nghttp(f"http://{gateway}/offerd.v1.Decisioning/Decide", body,
                 ["content-type: application/grpc", "te: trailers", "grpc-timeout: 1n"])
    assert "grpc-status: 4" in out.stdout, out.stdout


def test_health_through_nginx(stubs, gateway):
    payload = stubs.health_pb.HealthCheckRequest(service="").SerializeToString()
    code, _, response = raw_call(gateway, payload, path="/grpc.health.v1.Health/Check")
    assert code == grpc.StatusCode.OK
    assert stubs.health_pb.HealthCheckResponse.FromString(response).status == stubs.health_pb.HealthCheckResponse.SERVING


def test_unknown_method_through_nginx(gateway):
    code, _, _ = raw_call(gateway, b"", path="/offerd.v1.Decisioning/Nope")
    assert code == grpc.StatusCode.UNIMPLEMENTED
