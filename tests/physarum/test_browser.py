"""The Physarum page in Debian's headless Chromium (never a downloaded browser):
the WebGL canvas draws a non-empty picture, and the SVG fallback draws one tube
element per alive tube — the same tubes as WebGL at the same step."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright

from browser_support import CHROMIUM, CHROMIUM_ARGS, SWIFTSHADER

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "python" / "vudo" / "web" / "static"
WASM = ROOT / "python" / "vudo" / "physarum" / "physarum.wasm"


class Handler(http.server.BaseHTTPRequestHandler):
    """The node's URL contract: /physarum, /static/<file>, /physarum.wasm."""

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json"}
        if path == "/physarum":
            file, ctype = STATIC / "physarum.html", "text/html"
        elif path == "/physarum.wasm":
            file, ctype = WASM, "application/wasm"
        elif path.startswith("/static/") and "/" not in path[8:] and not path[8:].startswith("."):
            file = STATIC / path[8:]
            ctype = types.get(file.suffix, "application/octet-stream")
        else:
            self.send_error(404)
            return
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    assert (STATIC / "physarum.js").is_file(), "build the page first: (cd web && npm run build)"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def open_page(page: Page, url: str) -> dict[str, object]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.__physarum && window.__physarum.ready && window.__physarum.step >= 20", timeout=60_000)
    # Pause so the picture and the counters describe one state.
    page.click("#play")
    page.wait_for_timeout(200)
    status: dict[str, object] = page.evaluate("({...window.__physarum})")
    assert not errors, errors
    assert status["error"] is None
    return status


def test_webgl_canvas_draws_a_nonempty_picture(base_url: str, pw: Playwright) -> None:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + SWIFTSHADER)
    page = browser.new_page()
    status = open_page(page, f"{base_url}/physarum?seed=3")
    assert status["renderer"] == "webgl"
    assert status["edgesDrawn"] == status["alive"] and int(status["alive"]) > 0  # type: ignore[call-overload]
    # Copy the WebGL canvas (toDataURL) into a 2D canvas and count pixels that
    # differ clearly from the clear colour (10, 13, 20).
    lit: int = page.evaluate(
        """async () => {
            const img = new Image();
            img.src = document.getElementById('view').toDataURL('image/png');
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.width; c.height = img.height;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                const diff = Math.max(Math.abs(d[i] - 10), Math.abs(d[i + 1] - 13), Math.abs(d[i + 2] - 20));
                if (diff > 40) n++;
            }
            return n;
        }"""
    )
    assert lit > 2000, f"only {lit} non-background pixels"
    browser.close()


def test_svg_fallback_draws_one_element_per_alive_tube(base_url: str, pw: Playwright) -> None:
    for args, query in ((CHROMIUM_ARGS + ["--disable-webgl", "--disable-3d-apis"], "?seed=3"), (CHROMIUM_ARGS, "?seed=3&renderer=svg")):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        status = open_page(page, f"{base_url}/physarum{query}")
        assert status["renderer"] == "svg"
        tubes = page.locator("#view-svg line.tube").count()
        assert tubes == status["alive"] == status["edgesDrawn"] and tubes > 0
        assert page.locator("#view-svg circle.food").count() == 7
        browser.close()


def test_svg_and_webgl_show_the_same_tubes_at_the_same_step(base_url: str, pw: Playwright) -> None:
    """Paused at start, stepped the same number of times: same alive tube count."""
    counts = []
    for args, query in ((CHROMIUM_ARGS + SWIFTSHADER, "?seed=5&paused=1"), (CHROMIUM_ARGS, "?seed=5&paused=1&renderer=svg")):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        page.goto(f"{base_url}/physarum{query}")
        page.wait_for_function("window.__physarum && window.__physarum.ready")
        for _ in range(60):
            page.click("#step")
        page.wait_for_function("window.__physarum.step === 60")
        page.wait_for_timeout(100)
        st = page.evaluate("({...window.__physarum})")
        counts.append((st["alive"], st["edgesDrawn"]))
        browser.close()
    assert counts[0] == counts[1] and counts[0][0] == counts[0][1]
