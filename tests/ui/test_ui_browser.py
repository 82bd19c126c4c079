"""The page in a real browser (Playwright + the system's Chromium): the map draws, a slider move
makes one debounced decode request, clicking the map picks a sound.

Skipped without Playwright or without a system Chromium; Playwright's own browser download
(`playwright install`) is never used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ui_helpers import running_server

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser test needs Playwright: pip install playwright"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(
        "browser test needs a system Chromium (apt-get install chromium)", allow_module_level=True
    )

TEXT_OF = "document.querySelector('{}').textContent"
COUNT_POINT_PIXELS = """() => {
  const canvas = document.querySelector('#map');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 2] > 150) count++;  // blue-ish points
  return count;
}"""

MOVE_FIRST_SLIDER = """() => {
  const slider = document.querySelector('#sliders input');
  for (const value of [0.5, 0.8, 1.1, 1.3, 1.5]) {  // a drag: five input events in a row
    slider.value = value;
    slider.dispatchEvent(new Event('input', { bubbles: true }));
  }
}"""


def test_map_draws_and_a_slider_move_decodes_once(clip_checkpoint, clips, tmp_path):
    from helius.ui import create_app

    app = create_app(clip_checkpoint, data_dir=clips, run_dir=tmp_path / "runs")
    errors: list[str] = []
    decodes: list[dict] = []
    with running_server(app) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base + "/")
            page.wait_for_function(
                "document.querySelector('#map-status').textContent.includes('6 points')"
            )
            page.wait_for_load_state("networkidle")
            assert page.evaluate(COUNT_POINT_PIXELS) > 6 * 9  # six data points, several px each

            page.on(
                "request",
                lambda request: (
                    decodes.append(json.loads(request.post_data))
                    if request.url.endswith("/api/decode")
                    else None
                ),
            )
            page.click("#tabs >> text=Sliders")
            with page.expect_response(lambda response: response.url.endswith("/api/decode")):
                page.evaluate(MOVE_FIRST_SLIDER)
            page.wait_for_timeout(400)
            assert [body["latent"][0] for body in decodes] == [1.5]  # debounced: one request
            assert page.locator("#sliders output").first.text_content() == "1.50"
            assert page.get_attribute("#download", "aria-disabled") == "false"

            # Clicking the map picks a point (Snap) and makes its sound.
            canvas = page.locator("#map").bounding_box()
            with page.expect_response(lambda response: "/api/map/pick" in response.url):
                page.mouse.click(canvas["x"] + canvas["width"] / 2, canvas["y"] + 40)
            page.wait_for_function(
                "document.querySelector('#sound-label').textContent.endsWith('.wav')"
            )
            page.screenshot(path=str(tmp_path / "explorer.png"))
        finally:
            browser.close()
    assert errors == []
