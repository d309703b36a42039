"""Browser tests: Playwright drives Debian's `chromium` (Playwright's own browser download cannot work here)
against a live server on loopback, on a database of its own.

Without a Chromium the browser tests are left out, and pytest's summary ends with one line saying so and how to
enable them. Set PUNCHPASS_CHROMIUM to use another binary, and PUNCHPASS_SCREENSHOTS=1 to (re)write
docs/screenshots/*.png.

The fake camera: Chromium plays a .y4m file as its camera (`--use-file-for-fake-video-capture`) and opens the
file each time a page starts the camera, so a test writes the frames it wants the camera to see
(`fake_camera.show(text)`) just before it presses "Scan with camera"."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.config import load_config
from app.services import services
from tests.conftest import fresh_database
from tests.pages.camera import write_y4m

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
HOW_TO_ENABLE = ("browser tests skipped: no Chromium found (enable them with `apt-get install chromium "
                 "fonts-noto-cjk`, or set PUNCHPASS_CHROMIUM)")
_LEFT_OUT = pytest.StashKey[int]()


def pytest_collection_modifyitems(config, items):
    """No Chromium: every test that needs the browser is left out (counted for the summary line)."""
    if find_chromium() is not None:
        return
    needs_browser = [item for item in items if "browser" in getattr(item, "fixturenames", ())]
    if needs_browser:
        config.hook.pytest_deselected(items=needs_browser)
        items[:] = [item for item in items if item not in needs_browser]
        config.stash[_LEFT_OUT] = len(needs_browser)


def pytest_terminal_summary(terminalreporter, config):
    if config.stash.get(_LEFT_OUT, 0):
        terminalreporter.write_line(f"{config.stash[_LEFT_OUT]} {HOW_TO_ENABLE}")


def find_chromium() -> str | None:
    """PUNCHPASS_CHROMIUM when set (only it: point it nowhere to try the skip), else Debian's package."""
    chosen = os.environ.get("PUNCHPASS_CHROMIUM")
    candidates = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium"),
                                          shutil.which("chromium-browser")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


class FakeCamera:
    def __init__(self, path: Path):
        self.path = path
        self.show("")

    def show(self, text: str) -> None:
        """What the camera sees from the next time a page starts it: `text` as a QR code (blank when empty)."""
        write_y4m(self.path, text)


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory) -> FakeCamera:
    return FakeCamera(tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="package")
def browser(fake_camera):
    """One Chromium for the browser tests, closed when they are done: Playwright's sync API keeps an asyncio loop
    running on this thread while it is open, which other tests' own event loops cannot share."""
    executable = find_chromium()
    if executable is None:  # left out at collection already; this covers a binary gone since
        pytest.skip(HOW_TO_ENABLE)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={fake_camera.path}"])
        yield browser
        browser.close()


class LiveServer:
    """The app served by werkzeug's threaded server (what `punchpass serve` runs) from a daemon thread."""

    def __init__(self, env: dict):
        self._app = None
        self._server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.app = create_app(load_config({**env, "PUBLIC_BASE_URL": self.url}), testing=True)
        self._app = self.app
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ, start_response):
        return self._app(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        services(self.app).engine.dispose()


@pytest.fixture(scope="session")
def live_server(test_env, tmp_path_factory):
    """A server whose PUBLIC_BASE_URL is its own loopback address (so card links and pairing links open), on a
    database of its own (a base URL change re-issues every card of a database)."""
    with fresh_database(tmp_path_factory) as url:
        server = LiveServer({**test_env, "DATABASE_URL": url})
        yield server
        server.close()


@pytest.fixture
def page(browser, live_server, request):
    """A phone-sized page in a fresh browser context (no cookies), English unless a test says otherwise."""
    locale = getattr(request, "param", "en-US")
    context = browser.new_context(**PHONE, locale=locale, base_url=live_server.url)
    context.set_default_timeout(5000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    """docs/screenshots/<name>.png, only when PUNCHPASS_SCREENSHOTS is set (README links them)."""
    if os.environ.get("PUNCHPASS_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled", caret="hide")
