"""Open a report.html in headless Chromium, save a full-page screenshot and check the page
rendered: every table and figure of the file is in the browser's DOM and every image decoded.

    python scripts/screenshot_report.py runs/<experiment>/report/report.html [--out shot.png]

Needs Debian's chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# After load, list each image's natural width, so an image that failed to decode shows as 0.
PROBE = ("<script>window.addEventListener('load',()=>{const d=document.createElement('pre');d.id='probe';"
         "d.textContent='tables='+document.querySelectorAll('table').length+' images='+"
         "[...document.images].map(i=>i.naturalWidth).join(',');document.body.appendChild(d);});</script>")


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found; install it with `apt-get install chromium`")


def chromium(*args: str) -> str:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the report.html to open")
    parser.add_argument("--out", type=Path, help="screenshot path (default: report_screenshot.png beside it)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400, help="viewport height captured")
    args = parser.parse_args(argv)
    page = args.html.read_text()
    expected_tables, expected_images = page.count("<table>"), page.count("<img ")
    with tempfile.TemporaryDirectory() as scratch:
        probed = Path(scratch) / "probed.html"
        probed.write_text(page.replace("</body>", PROBE + "</body>"))
        dom = chromium("--dump-dom", probed.as_uri())
    found = re.search(r"tables=(\d+) images=([\d,]*)", dom)
    if not found:
        print("the page did not finish loading in Chromium", file=sys.stderr)
        return 1
    tables, widths = int(found.group(1)), [int(w) for w in found.group(2).split(",") if w]
    out = args.out or args.html.with_name("report_screenshot.png")
    chromium(f"--screenshot={out.resolve()}", f"--window-size={args.width},{args.height}", args.html.resolve().as_uri())
    print(f"{args.html}: {tables}/{expected_tables} tables and {sum(w > 0 for w in widths)}/{expected_images} "
          f"images rendered in Chromium; screenshot {out} ({out.stat().st_size:,} bytes)")
    return 0 if tables == expected_tables and len(widths) == expected_images and all(widths) else 1


if __name__ == "__main__":
    sys.exit(main())
