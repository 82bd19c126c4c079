"""The page in a real browser (Playwright + the system's Chromium): the map draws, a slider move
makes one debounced decode request, clicking the map picks a sound; wheel zoom, drag pan and
double-click reset move the map's view; a WAV dropped on the Recon tab comes back as the
model's reconstruction.

Skipped without Playwright or without a system Chromium; Playwright's own browser download
(`playwright install`) is never used.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import sine
from ui_helpers import SAMPLE_RATE, running_server

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


# ---- the map's view -----------------------------------------------------------------------

POINT_RGB = (0x7F, 0xA7, 0xC9)  # map.js draws uncoloured points in #7fa7c9
MAP_PIXELS = """() => {  // the map canvas's RGBA bytes, base64 (a JSON array is far slower)
  const canvas = document.querySelector('#map');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let text = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return [canvas.height, canvas.width, btoa(text)];
}"""
# Two animation frames: the map repaints on the next one after any change.
NEXT_PAINT = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
CLEAR_MARKS = "() => { S.marker = null; S.neighbours = []; S.hover = -1; drawMap(); }"


@contextlib.contextmanager
def explorer_page(app, errors: list[str]):
    """A page on the explorer served from `app`, with its data map drawn."""
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
            yield page
        finally:
            browser.close()


def map_image(page) -> np.ndarray:
    page.evaluate(NEXT_PAINT)
    height, width, data = page.evaluate(MAP_PIXELS)
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, 4)


def points_box(image: np.ndarray) -> tuple[int, np.ndarray]:
    """(pixels in the points' colour, their bounding box [left, top, right, bottom])."""
    rows, columns = np.nonzero(np.all(image[..., :3] == POINT_RGB, axis=-1))
    return len(rows), np.array([columns.min(), rows.min(), columns.max(), rows.max()])


def test_wheel_zooms_drag_pans_and_double_click_resets_the_map(clip_checkpoint, clips, tmp_path):
    from helius.ui import create_app

    app = create_app(clip_checkpoint, data_dir=clips, run_dir=tmp_path / "runs")
    errors: list[str] = []
    picks: list[str] = []
    with explorer_page(app, errors) as page:
        page.on("request", lambda r: picks.append(r.url) if "/api/map/pick" in r.url else None)
        canvas = page.locator("#map").bounding_box()
        centre = np.array([canvas["width"] / 2, canvas["height"] / 2])  # in the canvas
        on_page = lambda point: (canvas["x"] + point[0], canvas["y"] + point[1])  # noqa: E731
        outside = (canvas["x"] + canvas["width"] + 50, canvas["y"] + 10)
        view = lambda: page.evaluate("() => ({ ...S.view })")  # noqa: E731
        assert page.evaluate("window.devicePixelRatio") == 1  # canvas px = CSS px
        page.evaluate(CLEAR_MARKS)  # the current sound's marker, drawn over the map
        original = map_image(page)
        count, box = points_box(original)
        assert count > 6 * 9 and view() == {"zoom": 1, "cx": 0, "cy": 0}

        # Wheel down zooms out about the cursor: every point's offset from it shrinks alike.
        cursor = centre + np.array([80, -60])
        page.mouse.move(*on_page(cursor))
        page.mouse.wheel(0, 100)
        page.mouse.move(*outside)  # no hover ring over the points
        zoom = view()["zoom"]
        zoomed_count, zoomed_box = points_box(map_image(page))
        assert 0.7 < zoom < 0.95
        assert zoomed_count < count  # smaller points ...
        anchor = np.tile(cursor, 2)
        np.testing.assert_allclose(zoomed_box, anchor + (box - anchor) * zoom, atol=3)

        # Wheel up zooms back in.
        page.mouse.move(*on_page(cursor))
        page.mouse.wheel(0, -60)
        page.mouse.move(*outside)
        assert view()["zoom"] > zoom
        _, again_box = points_box(map_image(page))
        assert np.all(again_box[2:] - again_box[:2] > zoomed_box[2:] - zoomed_box[:2])
        zoom, zoomed_count, zoomed_box = view()["zoom"], *points_box(map_image(page))

        # A drag pans: the points follow the mouse to the pixel, and nothing is picked.
        drag = np.array([20, 60])
        page.mouse.move(*on_page(centre))
        page.mouse.down()
        page.mouse.move(*on_page(centre + drag), steps=6)
        page.mouse.up()
        page.mouse.move(*outside)
        panned_count, panned_box = points_box(map_image(page))
        assert view()["zoom"] == zoom and panned_count == zoomed_count
        np.testing.assert_allclose(panned_box, zoomed_box + np.tile(drag, 2), atol=1)
        assert picks == []

        # A double-click restores the original view; its two clicks pick a sound too.
        page.mouse.dblclick(*on_page(centre))
        page.wait_for_function("() => busyCount === 0 && S.marker !== null")
        assert len(picks) == 2
        assert view() == {"zoom": 1, "cx": 0, "cy": 0}
        page.mouse.move(*outside)
        page.evaluate(CLEAR_MARKS)
        np.testing.assert_array_equal(map_image(page), original)
    assert errors == []


# ---- Recon: drag and drop -----------------------------------------------------------------

DROP_FILE = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: 'audio/wav' }));
  return transfer;
}"""


PAGE_SOUND = (
    """async () => Array.from(new Uint8Array(await (await fetch(S.soundUrl)).arrayBuffer()))"""
)


def test_a_dropped_wav_comes_back_as_its_reconstruction(clip_checkpoint, clips, tmp_path):
    from helius.models.checkpoint import load_vae
    from helius.ui import create_app

    tone = sine(0.3, SAMPLE_RATE, 330.0) * np.hanning(round(0.3 * SAMPLE_RATE))
    buffer = io.BytesIO()
    sf.write(buffer, tone.T, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    # Worked out without the explorer: the model's mean of the first clip, decoded.
    vae, _ = load_vae(clip_checkpoint)
    with torch.no_grad():
        clip = torch.from_numpy(tone[:, : vae.hop_samples].astype(np.float32))[None]
        latent, _ = vae.encode(clip)
        expected = vae.decode(latent)[0].numpy()

    app = create_app(clip_checkpoint, data_dir=clips, run_dir=tmp_path / "runs")
    errors: list[str] = []
    with explorer_page(app, errors) as page:
        page.click("#tabs >> text=Recon")
        transfer = page.evaluate_handle(
            DROP_FILE, ["tone.wav", base64.b64encode(buffer.getvalue()).decode()]
        )
        page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
        assert "over" in page.get_attribute("#drop", "class")
        with page.expect_response(lambda r: r.url.endswith("/api/decode")) as decoded:
            page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
        page.wait_for_function(
            "document.querySelector('#sound-label').textContent === 'recon tone.wav'"
        )
        assert page.text_content("#recon-label") == "tone.wav: 0.30 s encoded"
        assert "over" not in page.get_attribute("#drop", "class")
        assert page.is_enabled("#recon-again") and page.is_enabled("#recon-original")
        np.testing.assert_allclose(page.evaluate("S.latent"), latent[0].numpy(), atol=1e-5)
        assert decoded.value.ok
        # The sound the page now plays and offers for download.
        wav = bytes(page.evaluate(PAGE_SOUND))
        heard, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE and heard.shape == expected.T.shape
        assert np.abs(expected).max() > 0.01  # a sound, not silence
        np.testing.assert_allclose(heard.T, np.clip(expected, -1, 1), atol=2 / 32768)
    assert errors == []
