"""Three offerd servers sharing one Redis stream behind a real gateway (SPEC 11): Debian's nginx (`grpc_pass` to
an upstream of three) and HAProxy (an h2 backend of three, round robin). A cap reached through the gateway holds
whichever server answers, and each server is shown to have answered. The configurations are the ones
docs/gateways.md and docs/live-state.md show (test_gateways_tls.py writes them)."""

import shutil

import pytest

from conftest import free_port
from test_gateways_tls import haproxy_config, nginx_config, start as start_gateway, stop as stop_gateway
from test_live_state import Redis, applied, first_offer, live_dir, metric, record_events, start, wait_for  # noqa: F401


class Target:
    """What `first_offer` and `record_events` need of a server: its gRPC address."""

    def __init__(self, target):
        self.target = target


def decide_calls(server):
    value = metric(server, "offerd_grpc_calls_total", '{method="offerd.v1.Decisioning/Decide",status="OK"}')
    return value or 0


@pytest.fixture(params=["nginx", "haproxy"])
def cluster(request, live_dir, tmp_path_factory):
    redis = Redis(live_dir)
    log = f"redis://127.0.0.1:{redis.port}?key=cluster"
    servers = [start(live_dir, log) for _ in range(3)]
    port = free_port()
    d = tmp_path_factory.mktemp(request.param)
    backends = [server.target for server in servers]
    if request.param == "nginx":
        (d / "nginx.conf").write_text(nginx_config(d, port, backends))
        args = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf")]
    else:
        haproxy = shutil.which("haproxy") or pytest.skip("haproxy is not installed (apt-get install haproxy)")
        (d / "haproxy.cfg").write_text(haproxy_config(port, backends))
        args = [haproxy, "-db", "-f", str(d / "haproxy.cfg")]
    gateway = start_gateway(args, f"127.0.0.1:{port}", request.param)
    try:
        yield Target(f"127.0.0.1:{port}"), servers
    finally:
        stop_gateway(gateway)
        codes = [server.stop() for server in servers]
        redis.stop()
        assert codes == [0, 0, 0], "".join(server.log_path.read_text() for server in servers)


def all_applied(servers, count):
    wait_for(lambda: all(applied(server) == count for server in servers), what=f"{count} entries applied everywhere")


def test_a_cap_reached_through_the_gateway_holds_whichever_server_answers(stubs, cluster):
    gateway, servers = cluster
    # Carl is not in the snapshot; "capped" allows 2 decisions per person: two through the gateway (whichever
    # servers answer them), each waited for until every server has applied it.
    assert first_offer(stubs, gateway, "carl") == "capped"
    all_applied(servers, 1)
    assert first_offer(stubs, gateway, "carl") == "capped"
    all_applied(servers, 2)
    # Now capped on every server: calls through the gateway until each server has answered at least one.
    before = [decide_calls(server) for server in servers]
    for _ in range(60):
        assert first_offer(stubs, gateway, "carl") == "free"
        if all(decide_calls(server) > calls for server, calls in zip(servers, before)):
            break
    assert all(decide_calls(server) > calls for server, calls in zip(servers, before)), "a server never answered"
    # "free" has no capping rule: nothing more was recorded.
    assert all(applied(server) == 2 for server in servers)

    # A display recorded through the gateway (answered once applied on the server that took it) caps "capped"
    # for Bob for the day, on every server.
    answer = record_events(stubs, gateway, [{"id": "shown-1", "who": "bob"}])
    assert answer.recorded == 1 and answer.position
    all_applied(servers, 3)
    before = [decide_calls(server) for server in servers]
    for _ in range(60):
        assert first_offer(stubs, gateway, "bob") == "free"
        if all(decide_calls(server) > calls for server, calls in zip(servers, before)):
            break
    assert all(decide_calls(server) > calls for server, calls in zip(servers, before)), "a server never answered"
    # The same event id again, through whichever server: a duplicate, recorded nowhere.
    assert record_events(stubs, gateway, [{"id": "shown-1", "who": "bob"}]).duplicates == 1
