"""Screenshots of the built documentation site in headless Chromium (issue 34): docs/screenshots/site_home.png
and site_debate.png, so a reader of the repository sees what `mkdocs serve` shows.

    python scripts/site_screenshots.py        # builds the site into a temporary folder, serves it on 127.0.0.1

Needs the docs extra and Chromium (`bash scripts/setup.sh test` installs both; REFEREE_CHROMIUM names another).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"site_home.png": "", "site_debate.png": "methods/debate/"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request is noise here
        pass


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("REFEREE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no chromium: install Debian's (bash scripts/setup.sh test) or set REFEREE_CHROMIUM")
    with tempfile.TemporaryDirectory() as site:
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site], cwd=ROOT, check=True,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        handler = functools.partial(QuietHandler, directory=site)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, path in PAGES.items():
                    page.goto(f"http://127.0.0.1:{server.server_port}/{path}", wait_until="networkidle")
                    page.screenshot(path=str(ROOT / "docs" / "screenshots" / name))
                    print(f"docs/screenshots/{name}: {page.title()}")
                browser.close()
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
