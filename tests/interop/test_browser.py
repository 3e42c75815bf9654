"""A browser page on another origin (examples/browser) asks offerd for a decision with Connect JSON; headless
Chromium runs it. The page's origin allowed by --cors-origin: the offers show; not allowed: the browser's CORS
check fails the call."""

import functools
import http.server
import pathlib
import shutil
import subprocess
import threading

import pytest

from conftest import Server, free_port

PAGE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "browser"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def page_origin():
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    handler.log_message = lambda *args: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


def render(page_origin, server, tmp_path):
    url = f"{page_origin}/index.html?offerd=http://{server.target}&id=4711&scope=dec-home:web-banner"
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    return result.stdout


def test_page_on_an_allowed_origin_shows_the_offers(page_origin, tmp_path):
    server = Server(tmp_path, extra_args=["--cors-origin", page_origin])
    try:
        dom = render(page_origin, server, tmp_path)
    finally:
        assert server.stop() == 0
    assert "<title>decided</title>" in dom, dom[-2000:]
    assert "outcome OUTCOME_OFFERS" in dom
    assert '<li class="offer">offer-vip' in dom


def test_page_on_another_origin_is_refused_by_cors(page_origin, tmp_path):
    server = Server(tmp_path, extra_args=["--cors-origin", "https://somewhere.else"])
    try:
        dom = render(page_origin, server, tmp_path)
    finally:
        assert server.stop() == 0
    assert "<title>failed</title>" in dom, dom[-2000:]
    assert "offer-vip" not in dom
