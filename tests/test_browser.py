"""The Streamlit app in a real browser: `streamlit run app.py` on a free port, driven by headless Chromium
through Playwright. Loads the demo pair (demo-target and demo-donor), scans en + zh, opens Overlap, suppresses neurons
and chats on Intervene & chat, visits every page and checks that none shows an exception.

Full-page screenshots of each page go to the test's tmp_path and to test-output/screenshots/ (git-ignored).
Needs /usr/bin/chromium (Debian's `chromium` package) and the `playwright` package (never `playwright install`):
skipped without them, unless NEURONLAB_REQUIRE_BROWSER=1 (CI), where their absence fails the test."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# docs/screenshots is refreshed with NEURONLAB_SCREENSHOTS=docs/screenshots (bench/tour.py does so)
SCREENSHOTS = REPO / os.environ.get("NEURONLAB_SCREENSHOTS", "test-output/screenshots")
TOUR_TIMINGS = os.environ.get("NEURONLAB_TOUR_TIMINGS")  # a JSON file for the Tour's step timings (bench/tour.py)
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]
START_TIMEOUT = 60  # s for the server to answer /_stcore/health
LOAD_TIMEOUT = 240_000  # ms: the first load of demo-target converts its GGUF (~30 s on a fresh machine)
WORK_TIMEOUT = 180_000  # ms: a scan or a streamed reply on a 2-core CPU
UI_TIMEOUT = 30_000  # ms: a plain rerun
PAGES = {"start": "Start", "tour": "Tour", "models": "Models", "safety_neurons": "Safety neurons",
         "overlap": "Overlap", "neurons": "Neurons", "intervene": "Intervene & chat", "transfer": "Transfer",
         "evaluate": "Evaluate"}
TITLES = {"start": "NeuronLab"}  # page title (h1) where it differs from the menu entry


@pytest.fixture
def playwright_api():
    """The sync Playwright API, or a skip (a failure when NEURONLAB_REQUIRE_BROWSER=1) naming what is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package (pip install -r requirements-dev.txt)")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("NEURONLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (NEURONLAB_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(reason)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(playwright_api, tmp_path):
    """README's `streamlit run app.py` on a free port (after the browser check: no server for a skipped test);
    yields the base URL; the process group is killed after."""
    port = _free_port()
    log_path = tmp_path / "streamlit.log"
    log = log_path.open("w")
    # fileWatcherType none: files other people edit during the run must not change the app under test.
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "TQDM_DISABLE": "1"})
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer {url}/_stcore/health in {START_TIMEOUT} s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()
        print(f"\nstreamlit log: {log_path}")


def settle(page, timeout: int = WORK_TIMEOUT) -> None:
    """Wait until the script run that an action started is over (the "Stop" status widget is gone) and no
    element is stale any more, then check that the page shows no exception."""
    page.wait_for_timeout(600)  # the rerun request reaches the server and the status widget appears
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout)
    try:
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=UI_TIMEOUT)
    except Exception:  # name what stayed stale, for the next reader of a failed run
        stale = page.evaluate("() => [...document.querySelectorAll('[data-stale=\"true\"]')]"
                              ".map(e => (e.getAttribute('data-testid') || e.className) + ': ' + e.innerText.slice(0, 80))")
        print(f"still stale on {page.url}: {stale}")
        raise
    assert_no_exception(page)


def assert_no_exception(page) -> None:
    """No exception box, no traceback text, and no error alert (none is expected anywhere in this walk)."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()
    body = page.locator("body").inner_text()
    assert "Traceback" not in body, body


def goto(page, name: str) -> None:
    """Switch page in the sidebar navigation (one session, unlike a new URL) and wait for its title."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=PAGES[name], exact=True).click()
    page.wait_for_url(f"**/{'' if name == 'start' else name}")
    title = TITLES.get(name, PAGES[name].split(" &")[0])
    page.locator("h1").filter(has_text=title).first.wait_for(timeout=UI_TIMEOUT)
    settle(page)


@contextmanager
def browser_page(playwright_api, server: str):
    """A 1400 px wide Chromium page on the app's start page; the browser is closed after."""
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(server)
            yield page
        finally:
            browser.close()


def type_neurons(page, line: str) -> None:
    """Switch off the neurons of ``line`` in the Intervene page's "Single neurons" box."""
    typed = page.locator(".st-key-iv_typed input")
    typed.fill(line)
    typed.press("Enter")
    page.get_by_text("intervention on").wait_for()
    settle(page)


def screenshot(page, folder: Path, name: str) -> Path:
    """A full-page PNG: the viewport grows to the height of the tallest scrolling area first (Streamlit scrolls
    its main area, not the document, so Playwright's full_page alone would stop at the viewport)."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid]')]"
                           ".map(e => e.scrollHeight))")
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": max(900, min(int(height) + 40, 8000))})
    page.wait_for_timeout(800)  # charts re-layout to the new size
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)
    return path


def test_app_in_a_real_browser(playwright_api, server, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    started = time.monotonic()
    with browser_page(playwright_api, server) as page:
        page.locator(".st-key-load_models button").wait_for()
        settle(page)

        # Sidebar: load demo-target as target and demo-donor as donor (the defaults).
        sidebar = page.locator('[data-testid="stSidebar"]')
        page.locator(".st-key-load_models button").click()
        sidebar.get_by_text("✅ target:").wait_for(timeout=LOAD_TIMEOUT)
        sidebar.get_by_text("✅ donor:").wait_for(timeout=LOAD_TIMEOUT)
        settle(page, LOAD_TIMEOUT)
        goto(page, "models")
        page.get_by_text("Compatible:").wait_for(timeout=WORK_TIMEOUT)  # demo-donor is demo-target plus a patch
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        settle(page)
        screenshot(page, shots, "1-models")

        # Safety neurons: scan en + zh (the defaults) on 4 prompts per label.
        goto(page, "safety_neurons")
        languages = page.locator(".st-key-scan_langs_bundled")
        assert "en" in languages.inner_text() and "zh" in languages.inner_text()
        per_label = page.locator(".st-key-scan_per_label input")
        per_label.fill("4")
        per_label.press("Enter")
        settle(page)
        page.locator(".st-key-scan_run button").click()
        page.get_by_text("Per-layer scores").wait_for(timeout=WORK_TIMEOUT)
        settle(page)
        assert "en 4+4, zh 4+4" in page.locator('[data-testid="stMain"]').inner_text()
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(state="visible")
        screenshot(page, shots, "2-safety_neurons")

        # Overlap: the Venn, Jaccard and SS charts of the scan.
        goto(page, "overlap")
        charts = page.locator('[data-testid="stPlotlyChart"]')
        charts.first.wait_for(state="visible")
        assert charts.count() == 4  # Venn, per-layer Jaccard, Jaccard matrix, SS per layer
        page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="visible")
        screenshot(page, shots, "3-overlap")

        # Intervene & chat: suppress the MLPs of layers 0-1, chat with 8 new tokens.
        goto(page, "intervene")
        type_neurons(page, "0-1 mlp *")
        tokens = page.locator(".st-key-iv_max_new_tokens")
        tokens.locator('input[type="range"]').focus()
        tokens.locator('input[type="range"]').press("Home")  # the minimum, 8 tokens
        settle(page)
        assert tokens.locator('[data-testid="stSliderThumbValue"]').inner_text().strip() == "8"
        chat = page.locator('[data-testid="stChatInputTextArea"]')
        chat.fill("What is the capital of France?")
        chat.press("Enter")
        replies = page.locator('[data-testid="stChatMessage"]')
        replies.nth(2).wait_for(timeout=WORK_TIMEOUT)  # user, patched, plain
        settle(page)
        texts = replies.all_inner_texts()
        assert len(texts) == 3 and "What is the capital of France?" in texts[0], texts
        for text, title in zip(texts[1:], ["with your changes", "as loaded"]):
            assert title in text, texts
            reply = text.split("\n", 1)[1].strip() if "\n" in text else ""
            assert reply, f"no streamed reply under {title!r}: {texts}"
        assert "suppress" in texts[1] and "typed neurons" in texts[1], texts
        screenshot(page, shots, "4-intervene")

        # Tour: its cheapest step, then back to Models: every page once more without exceptions.
        goto(page, "tour")
        page.locator(".st-key-tour_step_1 button").click()
        page.get_by_text("MLP neurons per layer").wait_for(timeout=WORK_TIMEOUT)
        settle(page)
        screenshot(page, shots, "5-tour")
        for number, name in enumerate(PAGES, 1):  # every page once more, each in a screenshot
            goto(page, name)
            if page.locator('[data-testid="stPlotlyChart"]').count():  # let the charts draw
                page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="visible")
            screenshot(page, shots, f"page-{number}-{name}")
    print(f"\nbrowser test: {time.monotonic() - started:.0f} s; screenshots in {shots} and {SCREENSHOTS}")


def test_the_tour_from_a_cold_page(playwright_api, server, tmp_path):
    """A new user's first minute: Start, "Start the Tour", then every step in turn, each timed from its click to
    the end of its run. The suppress step shows demo-donor refusing, then answering with its safety neurons off;
    the transfer step shows demo-target answering, then refusing with the donor's neurons copied in; the bias step
    scores demo-target, bias-donor and the transfer."""
    timings = {}
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT)
            started = time.monotonic()
            page.goto(server)
            page.get_by_role("button", name="Start the Tour →").wait_for()
            settle(page)
            timings["start page"] = time.monotonic() - started
            page.get_by_role("button", name="Start the Tour →").click()
            page.wait_for_url("**/tour")
            settle(page)
            main = page.locator('[data-testid="stMain"]')
            for step in range(1, 7):
                clicked = time.monotonic()
                page.locator(f".st-key-tour_step_{step} button").click()
                settle(page, LOAD_TIMEOUT)
                timings[f"step {step}"] = time.monotonic() - clicked
            text = main.inner_text()
            assert "demo-donor as it is · 🛑 refuses" in text and "safety neurons off · 💬 answers" in text, text
            assert "demo-target as it is · 💬 answers" in text and "donor neurons · 🛑 refuses" in text, text
            assert "random neurons off" in text and "held-out harmful English requests" in text, text
            assert "bias-donor: stereotype score" in text and "points toward 50%" in text, text  # the bias step
            assert page.locator('[data-testid="stPlotlyChart"]').count() == 3  # the heatmap, the Venn, the bias bars
            timings["whole tour"] = time.monotonic() - started
            screenshot(page, tmp_path, "2-tour")
        finally:
            browser.close()
    print("\ntour timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if TOUR_TIMINGS:
        Path(TOUR_TIMINGS).write_text(json.dumps(timings, indent=1))


def test_stop_keeps_what_the_job_finished(playwright_api, server):
    """A real click on a job's Stop button: an evaluation of the plain model, the intervened one and its random
    control is stopped once the plain model is measured; the page says so and still shows the plain model."""
    with browser_page(playwright_api, server) as page:
        page.locator(".st-key-load_models button").click()
        page.locator('[data-testid="stSidebar"]').get_by_text("✅ target:").wait_for(timeout=LOAD_TIMEOUT)
        settle(page, LOAD_TIMEOUT)
        goto(page, "intervene")
        type_neurons(page, "0-1 mlp *")
        goto(page, "evaluate")
        page.locator(".st-key-ev_run button").click()
        bar = page.locator('[data-testid="stProgress"]')
        bar.get_by_text("intervened:").wait_for(timeout=WORK_TIMEOUT)  # the plain model is measured
        page.locator(".st-key-evaluation_stop button").first.click()
        settle(page)
        main = page.locator('[data-testid="stMain"]')
        note = main.get_by_text("Stopped after 1 of 3 model variants")
        note.wait_for()
        assert "(0 s)" not in note.inner_text()  # the time until the stop
        page.locator(".st-key-evaluation_chart").wait_for()  # the plain model's bars stay


def test_a_session_waits_visibly_for_another_and_goes_on_when_it_stops(playwright_api, server):
    """Two browser sessions share demo-target: the second one's evaluation waits for the first one's (a full one,
    minutes long), says so in its progress bar, and starts within seconds of the first one's Stop."""
    with browser_page(playwright_api, server) as first:
        second = first.context.browser.new_page(viewport={"width": 1400, "height": 900})
        second.set_default_timeout(UI_TIMEOUT)
        second.goto(server)
        for page in (first, second):
            page.locator(".st-key-load_models button").click()
            page.locator('[data-testid="stSidebar"]').get_by_text("✅ target:").wait_for(timeout=LOAD_TIMEOUT)
            settle(page, LOAD_TIMEOUT)
            goto(page, "evaluate")
        first.locator(".st-key-ev_preset").get_by_text("full").click()  # minutes: it would not end by itself
        settle(first)
        first.locator(".st-key-ev_run button").click()
        first.locator('[data-testid="stProgress"]').get_by_text("Writing replies").wait_for(timeout=WORK_TIMEOUT)
        second.locator(".st-key-ev_run button").click()
        bar = second.locator('[data-testid="stProgress"]')
        bar.get_by_text("Waiting for another session's work on demo-target").wait_for(timeout=UI_TIMEOUT)
        first.locator(".st-key-evaluation_stop button").first.click()
        settle(first)
        bar.get_by_text("Writing replies").wait_for(timeout=UI_TIMEOUT)  # the wait ended with the other job
        second.locator(".st-key-evaluation_stop button").first.click()
        settle(second)
        second.locator('[data-testid="stMain"]').get_by_text("Stopped after 0 of").wait_for()


def test_a_click_on_a_heatmap_cell_or_a_table_row_opens_the_neuron_card(playwright_api, server):
    """Safety neurons with demo-donor's shipped scan: a real click on a heatmap cell opens that neuron's card, and a
    click on the first row of the top-neuron table opens the card of that row's neuron."""
    with browser_page(playwright_api, server) as page:
        page.locator(".st-key-load_models button").click()
        page.locator('[data-testid="stSidebar"]').get_by_text("✅ target:").wait_for(timeout=LOAD_TIMEOUT)
        settle(page, LOAD_TIMEOUT)
        goto(page, "safety_neurons")
        plot = page.locator(".st-key-scan_heatmap .nsewdrag").first
        plot.wait_for(timeout=WORK_TIMEOUT)
        box = plot.bounding_box()
        plot.click(position={"x": box["width"] * 0.4, "y": box["height"] * 0.5})
        settle(page)
        card = page.locator('[data-testid="stMain"]').get_by_text("🔎 Neuron")
        card.wait_for(timeout=WORK_TIMEOUT)
        heading = card.inner_text()
        assert "mlp" in heading and "donor" in heading
        page.locator('[data-testid="stMain"]').get_by_text("How to read this: one box per language").wait_for()
        table = page.locator(".st-key-scan_table [data-testid='stDataFrameResizable']").first
        table.scroll_into_view_if_needed()
        table.click(position={"x": 18, "y": 35 + 18})  # the grid is a canvas: the first row's selection cell
        settle(page)
        page.wait_for_function("(before) => [...document.querySelectorAll('h4')].some(h => h.innerText.includes("
                               "'🔎 Neuron') && h.innerText !== before)", arg=heading, timeout=WORK_TIMEOUT)
