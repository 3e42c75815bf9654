"""offerd behind real gateways (docs/gateways.md): nginx with `grpc_pass grpcs://` (TLS to offerd), HAProxy with an
h2 backend (cleartext and TLS) and nghttpx (TLS to offerd). Each gateway listens in cleartext HTTP/2 and grpcio
calls Decide through it; the configurations are the ones docs/gateways.md shows."""

import shutil
import subprocess
import time

import grpc
import pytest

from conftest import free_port, Server
from helpers import decide, decide_error, request
from test_tls import make_ca, make_leaf, tls_args


@pytest.fixture(scope="module")
def gateway_pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gwpki")
    make_ca(directory, "ca")
    make_leaf(directory, "ca", "server")
    return directory


@pytest.fixture(scope="module")
def tls_offerd(tmp_path_factory, gateway_pki):
    s = Server(tmp_path_factory.mktemp("gwtls"), extra_args=tls_args(gateway_pki))
    yield s
    assert s.stop() == 0, s.log_path.read_text()


def start(args, target, name):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with grpc.insecure_channel(target) as channel:
                grpc.channel_ready_future(channel).result(timeout=0.5)
            return proc
        except grpc.FutureTimeoutError:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {proc.stderr.read().decode()}")
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nginx_config(d, port, backend, ca=None):
    """nginx in front of one offerd (`backend`, HOST:PORT) or several (a list, balanced per call): `grpc_pass
    grpcs://` with `ca`, else `grpc_pass grpc://` (cleartext HTTP/2)."""
    backends = [backend] if isinstance(backend, str) else backend
    upstream = "".join(f"        server {b};\n" for b in backends)
    if ca:
        location = f"""grpc_pass grpcs://offerd;
            grpc_ssl_verify on;
            grpc_ssl_trusted_certificate {ca};
            grpc_ssl_name localhost;
            grpc_ssl_server_name on;
            grpc_ssl_protocols TLSv1.2 TLSv1.3;"""
    else:
        location = "grpc_pass grpc://offerd;"
    return f"""
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
    upstream offerd {{
{upstream}    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            {location}
        }}
    }}
}}
"""


def haproxy_config(port, backend, ca=None):
    """HAProxy in front of one offerd (`backend`, HOST:PORT) or several (a list, balanced per call round robin):
    an h2 backend, TLS with `ca`."""
    backends = [backend] if isinstance(backend, str) else backend
    servers = []
    for number, b in enumerate(backends, 1):
        tls = f" ssl verify required ca-file {ca} sni str(localhost) alpn h2" if ca else " proto h2"
        servers.append(f"server offerd{number} {b}{tls}")
    server = "\n    ".join(["balance roundrobin", *servers])
    return f"""
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend grpc
    bind 127.0.0.1:{port} proto h2
    default_backend offerd
backend offerd
    {server}
"""


@pytest.fixture(params=["nginx-grpcs", "haproxy-h2c", "haproxy-tls", "nghttpx-tls"])
def gateway(request, tmp_path, server, tls_offerd, gateway_pki):
    kind = request.param
    port = free_port()
    target = f"127.0.0.1:{port}"
    ca = gateway_pki / "ca.pem"
    if kind == "nginx-grpcs":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        (tmp_path / "nginx.conf").write_text(nginx_config(tmp_path, port, tls_offerd.target, ca))
        args = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    elif kind.startswith("haproxy"):
        haproxy = shutil.which("haproxy") or pytest.skip("haproxy is not installed (apt-get install haproxy)")
        backend, tls_ca = (server.target, None) if kind == "haproxy-h2c" else (tls_offerd.target, ca)
        (tmp_path / "haproxy.cfg").write_text(haproxy_config(port, backend, tls_ca))
        args = [haproxy, "-db", "-f", str(tmp_path / "haproxy.cfg")]
    else:
        nghttpx = shutil.which("nghttpx") or pytest.skip("nghttpx is not installed (apt-get install nghttp2-proxy)")
        host, backend_port = tls_offerd.target.split(":")
        args = [nghttpx, "--conf=/dev/null", f"--frontend=127.0.0.1,{port};no-tls",
                f"--backend={host},{backend_port};;proto=h2;tls;sni=localhost", f"--cacert={ca}", "--workers=1",
                "--no-ocsp", f"--pid-file={tmp_path}/nghttpx.pid", "--errorlog-file=/dev/stderr"]
    proc = start(args, target, kind)
    yield target
    stop(proc)


def test_decide_through_gateway(stubs, gateway):
    response = decide(stubs, gateway, request(stubs.pb, scopes=[("dec-home", "web-banner", 3)]))
    assert [i.id for i in response.propositions[0].items] == ["offer-vip", "offer-gold-10", "offer-paris"]


def test_status_through_gateway(stubs, gateway):
    error = decide_error(stubs, gateway, request(stubs.pb, scopes=[("dec-home", "web-banner", 31)]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "scopes[0].item_count 31 exceeds 30"


def test_many_calls_through_gateway(stubs, gateway):
    with grpc.insecure_channel(gateway) as channel:
        stub = stubs.pb_grpc.DecisioningStub(channel)
        for _ in range(50):
            assert len(stub.Decide(request(stubs.pb), timeout=10).propositions) == 1
