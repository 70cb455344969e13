"""Cold start of the app on the built-in demo, in seconds from `streamlit run app.py`: the first page answering
HTTP, the Models page drawn in headless Chromium, the demo pair loaded, and the first chat reply (both the
patched and the unpatched answer finished) on Intervene & chat.

Usage: python bench/coldstart.py [PORT]   (needs /usr/bin/chromium and the playwright package)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
LONG = 300_000  # ms


def wait_http(url: str) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)


def main(port: int) -> dict:
    start = time.monotonic()
    marks = {}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://localhost:{port}/")
        marks["http_200_s"] = time.monotonic() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page()
            page.goto(f"http://localhost:{port}/")
            page.locator("h1").filter(has_text="Models").first.wait_for(timeout=LONG)
            marks["first_page_s"] = time.monotonic() - start
            page.locator(".st-key-load_models button").click()
            page.get_by_text("✅ donor:").wait_for(timeout=LONG)
            marks["models_loaded_s"] = time.monotonic() - start
            page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Intervene").click()
            chat = page.locator('[data-testid="stChatInputTextArea"]')
            chat.fill("What is the capital of France?")
            chat.press("Enter")
            page.locator('[data-testid="stChatMessage"]').nth(2).wait_for(timeout=LONG)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=LONG)
            marks["first_chat_reply_s"] = time.monotonic() - start
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    return {k: round(v, 1) for k, v in marks.items()}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8611)))
