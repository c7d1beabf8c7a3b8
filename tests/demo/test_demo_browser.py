"""The demo in a real browser: Debian's Chromium, headless, driven by Playwright against the app served on
127.0.0.1. Each tab is used once and what the page shows is checked; bad input shows a readable message and the
server keeps serving. Screenshots go to ``test-artifacts/demo/``.

Chromium missing: the test fails under ``CI=true`` and is skipped locally (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demo.conftest import GALLERY_SIZE, SYNTHETIC

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo"
# without the background-networking flags Chromium's own connections are refused by the closed network and slow it down
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000  # generous: the first dataset-browser request imports the builder (slow on a busy 2-core box)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def playwright_api() -> object:
    if not CHROMIUM.is_file():
        _unavailable(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser test"
        )
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("the playwright package is missing: pip install 'vl-hub[test]' (Chromium comes from Debian)")
    return sync_api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_root: Path, blip_bundle, gallery, datasets_cache: Path) -> Iterator[str]:
    """The demo (tiny untrained BLIP, synthetic gallery and browser) served on a free port in this process."""
    from vl_hub.demo import build_app, launch

    app = build_app(
        blip_bundle,
        gallery=gallery,
        cache_dir=demo_root / "cache",
        datasets_cache_dir=datasets_cache,
        synthetic_options=SYNTHETIC,
        catalogue=False,
    )
    port = _free_port()
    launch(app, host="127.0.0.1", port=port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def page(playwright_api, server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        tab = context.new_page()
        tab.goto(server)
        tab.wait_for_selector("#caption-image input[type=file]", state="attached")
        yield tab
        context.close()


@pytest.fixture(scope="module")
def files(ctx, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    broken = tmp_path_factory.mktemp("uploads") / "broken.png"
    broken.write_text("this is not an image")
    return {"image": ctx.examples[1], "broken": str(broken)}


def settle(page) -> None:
    """Waits until no component shows Gradio's pending state (the dimmed, timer-showing outputs of a request)."""
    page.wait_for_function("document.querySelectorAll('.pending').length === 0")


def shot(page, name: str) -> None:
    settle(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def wait_status(page, elem_id: str, marker: str) -> str:
    """The status line of a tab once it shows ``marker`` (✓ done, ⚠ error)."""
    page.wait_for_function(
        "([id, marker]) => (document.querySelector('#' + id)?.innerText || '').includes(marker)", arg=[elem_id, marker]
    )
    settle(page)
    return page.locator(f"#{elem_id}").inner_text()


def upload(page, elem_id: str, path: str | None) -> None:
    """Empties the image input ``elem_id`` and uploads ``path`` (``None``: leave it empty)."""
    remove = page.locator(f"#{elem_id} button[aria-label='Remove Image']")
    if remove.count():
        remove.first.click()
    if path is not None:
        page.locator(f"#{elem_id} input[type=file]").set_input_files(path)


def field(page, elem_id: str) -> object:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def pick(page, elem_id: str, value: str) -> None:
    """Chooses ``value`` in a dropdown."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([id, v]) => document.querySelector('#' + id + ' input').value === v", arg=[elem_id, value]
    )


def test_captioning_tab(page, files) -> None:
    assert "Untrained model" in page.locator("#model-info").inner_text()
    upload(page, "caption-image", files["image"])
    page.click("#caption-run")
    status = wait_status(page, "caption-status", "✓")
    lines = field(page, "caption-output").input_value().splitlines()
    assert [line[:3] for line in lines] == ["1. ", "2. ", "3. "] and all(len(line) > 3 for line in lines)
    assert "3 caption(s) by beam search" in status
    shot(page, "01_captioning")


def test_vqa_tab(page, files) -> None:
    open_tab(page, "Visual question answering")
    upload(page, "vqa-image", files["image"])
    field(page, "vqa-question").fill("what colour is the square?")
    page.click("#vqa-run")
    wait_status(page, "vqa-status", "✓")
    assert field(page, "vqa-output").input_value().strip()
    shot(page, "02_vqa")


def test_image_text_matching_tab(page, files) -> None:
    open_tab(page, "Image-text matching")
    upload(page, "itm-image", files["image"])
    field(page, "itm-text").fill("a red square and a yellow triangle")
    page.click("#itm-run")
    status = wait_status(page, "itm-status", "✓")
    assert "ITM P(match)" in status and "layer 0" in status
    scores = page.locator("#itm-scores").inner_text()
    assert "match" in scores and "%" in scores
    heatmap = page.locator("#itm-heatmap img")
    heatmap.wait_for()
    assert page.evaluate("el => el.naturalWidth", heatmap.element_handle()) == 256
    shot(page, "03_matching_gradcam")


def test_text_localisation_tab(page, files) -> None:
    open_tab(page, "Text localisation")
    upload(page, "loc-image", files["image"])
    field(page, "loc-text").fill("a red square and a yellow triangle")
    page.click("#loc-run")
    status = wait_status(page, "loc-status", "✓")
    assert "7 word(s)" in status
    page.wait_for_function("document.querySelectorAll('#loc-maps img').length >= 8")
    captions = page.locator("#loc-maps").inner_text()
    for word in ("all words (average)", "square", "yellow", "triangle"):
        assert word in captions
    shot(page, "04_text_localisation")


def test_multimodal_search_tab(page) -> None:
    open_tab(page, "Multimodal search")
    field(page, "search-query").fill("a red circle")
    page.locator("#search-count").get_by_label("24").check()
    page.click("#search-run")
    status = wait_status(page, "search-status", "✓")
    assert f"Top {GALLERY_SIZE} of {GALLERY_SIZE} images for 'a red circle'" in status
    page.wait_for_function(f"document.querySelectorAll('#search-results img').length >= {GALLERY_SIZE}")
    assert "#1 · " in page.locator("#search-results").inner_text()
    page.locator("#search-count").get_by_label("12").check()
    page.locator("#search-rerank input").check()
    page.click("#search-run")
    status = wait_status(page, "search-status", "re-ranked by ITM")
    assert "Top 12 of" in status
    page.wait_for_function("document.querySelectorAll('#search-results img').length === 12")
    shot(page, "05_search")


def test_zero_shot_tab(page, files) -> None:
    open_tab(page, "Zero-shot classification")
    upload(page, "zs-image", files["image"])
    field(page, "zs-classes").fill("circle, square, triangle")
    page.click("#zs-run")
    status = wait_status(page, "zs-status", "✓")
    assert "Best: " in status and "3 classes" in status
    page.locator("#zs-chart svg, #zs-chart canvas").first.wait_for()
    chart = page.locator("#zs-chart").inner_text()
    assert "circle" in chart and "triangle" in chart
    shot(page, "06_zero_shot")


def test_dataset_browser_pages_and_plays_videos(page) -> None:
    open_tab(page, "Dataset browser")
    page.click("#ds-open")
    wait_status(page, "ds-status", "✓ Opened vl_hub_shapes")
    assert "samples 1–8 of 16" in page.locator("#ds-summary").inner_text()
    assert page.locator("#ds-text-0").inner_text().startswith("#0")
    assert "captions" in page.locator("#ds-text-0").inner_text()
    page.locator("#ds-image-0 img").wait_for()
    shot(page, "07_datasets_first_page")
    page.click("#ds-next")
    page.wait_for_function("document.querySelector('#ds-summary').innerText.includes('samples 9–16 of 16')")
    page.wait_for_function("document.querySelector('#ds-text-0').innerText.startsWith('#8')")
    shot(page, "08_datasets_next_page")

    pick(page, "ds-config", "video_text")
    page.click("#ds-open")
    page.wait_for_function("document.querySelector('#ds-summary').innerText.includes('video_text')")
    video = page.locator("#ds-video-0 video")
    video.wait_for()
    played = page.evaluate(
        """async (v) => { v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 600));
                          return {time: v.currentTime, width: v.videoWidth, error: v.error && v.error.code}; }""",
        video.element_handle(),
    )
    assert played["error"] is None and played["width"] == 64 and played["time"] > 0
    assert "moving" in page.locator("#ds-text-0").inner_text()
    shot(page, "09_datasets_video")


def test_bad_input_shows_a_message_and_the_server_keeps_serving(page, files) -> None:
    open_tab(page, "Image captioning")
    upload(page, "caption-image", None)
    page.click("#caption-run")
    assert "No image: upload an image" in wait_status(page, "caption-status", "⚠")
    shot(page, "10_error_no_image")
    upload(page, "caption-image", files["broken"])
    page.click("#caption-run")
    message = wait_status(page, "caption-status", "not a readable image")
    assert "'broken.png'" in message and "/tmp/" not in message
    shot(page, "11_error_unreadable_file")

    open_tab(page, "Visual question answering")
    field(page, "vqa-question").fill("   ")
    page.click("#vqa-run")
    assert "The question is empty" in wait_status(page, "vqa-status", "⚠")

    open_tab(page, "Dataset browser")
    pick(page, "ds-builder", "coco_caption")
    field(page, "ds-data-dir").fill("/nowhere/coco")
    page.click("#ds-open")
    assert "The data folder '/nowhere/coco' does not exist" in wait_status(page, "ds-status", "⚠")
    shot(page, "12_error_missing_dataset_folder")

    open_tab(page, "Image captioning")  # a later request succeeds
    upload(page, "caption-image", files["image"])
    page.click("#caption-run")
    wait_status(page, "caption-status", "✓")
    assert field(page, "caption-output").input_value().startswith("1. ")
    shot(page, "13_served_after_errors")
