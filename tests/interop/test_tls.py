"""TLS and mTLS on the gRPC port (SPEC 10): certificates made with openssl at test time; grpcio over TLS (and
with a client certificate), curl over TLS for Connect (HTTP/1.1 and HTTP/2 by ALPN); a bad or mismatched pair
refuses to start; a changed pair serves new connections without a restart, and a mismatched one is ignored."""

import json
import shutil
import socket
import ssl
import subprocess
import time

import grpc
import pytest

from conftest import OFFERD, FIXTURES, Server, build_snapshot
from helpers import request


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)


def make_leaf(directory, ca, name, server=True):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n" + ("extendedKeyUsage=serverAuth\n" if server else "extendedKeyUsage=clientAuth\n"))
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", ext.name, "-out", f"{name}.pem", cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_ca(directory, "clientca")
    make_ca(directory, "otherca")
    make_leaf(directory, "ca", "server")
    make_leaf(directory, "ca", "server2")
    make_leaf(directory, "otherca", "server3")
    make_leaf(directory, "clientca", "client", server=False)
    make_leaf(directory, "otherca", "stranger", server=False)
    return directory


def tls_args(pki, cert="server", client_ca=None):
    args = ["--tls-cert", str(pki / f"{cert}.pem"), "--tls-key", str(pki / f"{cert}.key")]
    if client_ca:
        args += ["--tls-client-ca", str(pki / f"{client_ca}.pem")]
    return args


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    s = Server(tmp_path_factory.mktemp("tls"), extra_args=tls_args(pki))
    yield s
    assert s.stop() == 0, s.log_path.read_text()


def credentials(pki, ca="ca", client=None):
    key = cert = None
    if client:
        key = (pki / f"{client}.key").read_bytes()
        cert = (pki / f"{client}.pem").read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=(pki / f"{ca}.pem").read_bytes(), private_key=key,
                                        certificate_chain=cert)


def decide_tls(stubs, server, creds):
    with grpc.secure_channel(f"localhost:{server.port}", creds) as channel:
        stub = stubs.pb_grpc.DecisioningStub(channel)
        return stub.Decide(request(stubs.pb), timeout=10)


def test_grpcio_over_tls(stubs, tls_server, pki):
    response = decide_tls(stubs, tls_server, credentials(pki))
    assert len(response.propositions) == 1


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
def test_curl_connect_over_tls(tls_server, pki, http2):
    body = json.dumps({"identity": {"namespace": "ECID", "id": "4711"},
                       "scopes": [{"decisionId": "dec-home", "placementId": "web-banner"}]})
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(pki / "ca.pem"), "-w", "\\n%{http_version}", "--http2" if http2 else "--http1.1",
         "-H", "content-type: application/json", "-d", body,
         f"https://localhost:{tls_server.port}/offerd.v1.Decisioning/Decide"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    payload, version = out.rsplit("\n", 1)
    assert version == ("2" if http2 else "1.1")
    assert json.loads(payload)["propositions"][0]["decisionId"] == "dec-home"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_versions_and_alpn(tls_server, pki, version):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.minimum_version = context.maximum_version = version
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == {"TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}[tls.version()]
            assert tls.selected_alpn_protocol() == "h2"


def test_tls_1_1_is_refused(tls_server, pki):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki / "ca.pem"))
    try:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    except ValueError:
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            context.wrap_socket(raw, server_hostname="localhost")


def test_mtls(stubs, tmp_path, pki):
    server = Server(tmp_path, extra_args=tls_args(pki, client_ca="clientca"))
    try:
        assert len(decide_tls(stubs, server, credentials(pki, client="client")).propositions) == 1
        for creds in [credentials(pki), credentials(pki, client="stranger")]:
            with pytest.raises(grpc.RpcError) as error:
                decide_tls(stubs, server, creds)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        # The server keeps serving good clients.
        assert len(decide_tls(stubs, server, credentials(pki, client="client")).propositions) == 1
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("problem", ["mismatched", "missing", "garbage"])
def test_bad_pair_refuses_to_start_naming_the_file(tmp_path, pki, problem):
    shutil.copy(FIXTURES / "catalog.json", tmp_path / "catalog.json")
    build_snapshot(FIXTURES / "profiles.jsonl", tmp_path / "p.snap", "s")
    cert, key = pki / "server.pem", pki / "server2.key"
    if problem == "missing":
        key = tmp_path / "nope.key"
    if problem == "garbage":
        key = tmp_path / "garbage.key"
        key.write_text("not a key\n")
    result = subprocess.run(
        [OFFERD, "serve", "--catalog", str(tmp_path / "catalog.json"), "--snapshot", str(tmp_path / "p.snap"),
         "--port", "0", "--admin-port", "0", "--events", "none", "--tls-cert", str(cert), "--tls-key", str(key)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "cannot start" in result.stdout + result.stderr
    assert str(key) in result.stdout + result.stderr


def peer_certificate_cn(server, pki):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_verify_locations(str(pki / "otherca.pem"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]


def wait_for(predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_changed_pair_is_picked_up_and_a_mismatched_one_ignored(tmp_path, pki):
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    shutil.copy(pki / "server.pem", cert)
    shutil.copy(pki / "server.key", key)
    server = Server(tmp_path, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert peer_certificate_cn(server, pki) == "server"
        # A mismatched pair (new certificate, old key): ignored and logged, the old pair keeps serving.
        shutil.copy(pki / "server2.pem", cert)
        assert wait_for(lambda: "TLS certificate reload failed" in server.log_path.read_text())
        assert peer_certificate_cn(server, pki) == "server"
        # The matching key arrives: new connections get the new certificate, without a restart.
        shutil.copy(pki / "server2.key", key)
        assert wait_for(lambda: peer_certificate_cn(server, pki) == "server2")
        # Another CA's pair works too.
        shutil.copy(pki / "server3.key", key)
        shutil.copy(pki / "server3.pem", cert)
        assert wait_for(lambda: peer_certificate_cn(server, pki) == "server3")
    finally:
        assert server.stop() == 0


def test_garbage_and_floods_of_handshakes_leave_the_server_serving(stubs, tls_server, pki):
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05garbage" + bytes(range(256)))
            raw.settimeout(10)
            try:
                while raw.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    assert len(decide_tls(stubs, tls_server, credentials(pki)).propositions) == 1


def test_half_open_tls_is_closed(stubs, tls_server, pki):
    """A client that starts a handshake and stops is closed by the handshake timeout (10 s)."""
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00")
        started = time.time()
        try:
            assert raw.recv(4096) == b""
        except ConnectionResetError:
            pass
        assert time.time() - started < 30
    assert len(decide_tls(stubs, tls_server, credentials(pki)).propositions) == 1
