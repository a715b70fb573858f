"""The viewer in a real headless Chromium (Debian `chromium` driven by PyPI playwright; never `playwright
install`): filter to wrong answers, open an episode, see its thumbnails and memory window, page with the
keyboard, switch to the pairwise view, compare runs, and take screenshots (set AGENTRM_SCREENSHOTS=dir to keep
them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ALL_THUMBS_LOADED = """() => {
  const imgs = [...document.querySelectorAll('.thumb img')];
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def server(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from agentrm.viewer.app import create_app
    from agentrm.viewer.server import BackgroundServer

    app = create_app(demo_root / "traces", cache_dir=tmp_path_factory.mktemp("viewer-cache"))
    with BackgroundServer(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        exe = shutil.which("chromium") or "/usr/bin/chromium"
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.base = server  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("AGENTRM_SCREENSHOTS")
    path = Path(keep) if keep else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def view_ready(page: Any) -> None:
    """Wait until the view for the current address has finished rendering and takes keys (app.js marks it):
    a key pressed while the view still loads is dropped, which made this suite flaky under load."""
    page.wait_for_function("() => { const v = document.querySelector('#view > .view'); "
                           "return !!v && v.classList.contains('ready') && v.dataset.hash === location.hash; }")


def rows(page: Any) -> list[str]:
    return page.eval_on_selector_all("#samples tbody tr", "trs => trs.map(t => t.dataset.key)")


def test_filter_wrong_then_inspect_an_episode(page: Any, shots: Path) -> None:
    page.goto(page.base + "#/samples?run=run_a")
    page.wait_for_function("() => document.querySelectorAll('#samples tbody tr').length === 8")
    assert "invalid trace" in page.inner_text("#samples tr.error-row")  # a corrupt line is a row, no crash
    page.click("#f-wrong")
    page.wait_for_function("() => document.querySelectorAll('#samples tbody tr').length === 3")
    assert rows(page) == ["run_a:2", "run_a:6", "run_a:7"]
    all_wrong = "trs => trs.every(t => t.classList.contains('wrong'))"
    assert page.eval_on_selector_all("#samples tbody tr", all_wrong)
    assert "wrong=1" in page.url
    page.keyboard.press("j")
    assert page.get_attribute("#samples tr.selected", "data-key") == "run_a:6"
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    page.wait_for_selector(".video-timeline")
    assert "#/episode?run=run_a&line=2" in page.url
    page.wait_for_function(ALL_THUMBS_LOADED)
    sizes = page.eval_on_selector_all(".tool-result .thumb img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(sizes) == 9 and all(w == 96 for w in sizes)  # 3 tool turns' frames, decoded at native width
    # time axes: video 1 shows its 4 overview frames and the frames turns 1 and 3 asked for
    assert page.locator('.video-timeline[data-video="1"] .mark.overview').count() == 4
    assert page.locator(".video-timeline .mark:not(.overview)").count() == 9
    # memory window per turn: pinned overview groups stay, old tool groups are evicted
    assert page.locator(".window-state").count() == 4
    assert page.locator(".group.pinned").count() == 8
    assert page.locator(".group.evicted").count() == 3
    assert "evicted" in page.inner_text('#turn-3 .group[data-group="turn-1"]')
    assert page.locator("details.reasoning[open]").count() == 0  # reasoning starts collapsed
    assert "OA" in page.inner_text("table.verdicts") and "(overall)" in page.inner_text("table.verdicts")
    page.screenshot(path=str(shots / "episode.png"), full_page=True)
    page.click("#turn-1 .tool-result .thumb")
    page.wait_for_function("() => { const i = document.querySelector('#lightbox img'); "
                           "return i && i.complete && i.naturalWidth === 96; }")
    assert "video 1 · frame" in page.inner_text("#lightbox")
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").is_hidden()
    assert (shots / "episode.png").stat().st_size > 20_000


def test_keyboard_walks_the_list_and_pairwise_view(page: Any, shots: Path) -> None:
    page.goto(page.base + "#/episode?run=run_a&line=2&lrun=run_a&wrong=1")
    page.wait_for_selector(".video-timeline")
    view_ready(page)
    assert "1 of 3 in list" in page.inner_text(".crumbs")
    page.keyboard.press("r")
    assert page.locator("details.reasoning[open]").count() == page.locator("details.reasoning").count() > 0
    page.keyboard.press("p")
    page.wait_for_selector("table.side-by-side")
    view_ready(page)
    assert "#/pair?" in page.url
    heads = page.inner_text("table.side-by-side thead")
    assert "Video 1" in heads and "Video 2" in heads
    assert page.locator(".lanes .lane:not(.axis)").count() == 2  # both videos on one shared time axis
    labels = page.inner_text("table.verdicts")
    assert "human label" in labels and "model verdict" in labels
    page.wait_for_function(ALL_THUMBS_LOADED)
    page.screenshot(path=str(shots / "pair.png"), full_page=True)
    page.keyboard.press("j")
    page.wait_for_function("() => location.hash.includes('line=6')")
    view_ready(page)
    page.wait_for_selector("table.side-by-side")
    page.keyboard.press("u")
    page.wait_for_selector("#samples tr.selected")
    assert page.get_attribute("#samples tr.selected", "data-key") == "run_a:6"
    page.click("#f-wrong")  # every row again; n jumps to the next wrong one
    page.wait_for_function("() => document.querySelectorAll('#samples tbody tr').length === 8")
    page.keyboard.press("n")
    assert page.get_attribute("#samples tr.selected", "data-key") == "run_a:7"


def test_sort_by_a_dimension_reward(page: Any) -> None:
    page.goto(page.base + "#/samples?run=run_a")
    page.wait_for_function("() => document.querySelectorAll('#samples tbody tr').length === 8")
    page.select_option("#f-sort", "r2.VQ")
    page.wait_for_function("() => location.hash.includes('sort=r2.VQ')")
    page.click("th:has-text('ΔVQ')")  # a header click sorts by that column (the VQ margin), ascending
    page.wait_for_function("() => location.hash.includes('sort=m.VQ')")
    page.click("th:has-text('ΔVQ')")  # again: descending
    page.wait_for_function("() => location.hash.includes('desc=1')")
    col = page.eval_on_selector_all("#samples thead th", "ths => ths.findIndex(t => t.textContent === 'ΔVQ')")
    cells = page.eval_on_selector_all(
        f"#samples tbody tr:not(.error-row) td:nth-child({col + 1})", "tds => tds.map(t => t.textContent)"
    )
    values = [float(c) for c in cells if c != "—"]
    assert len(values) == 6 and values == sorted(values, reverse=True)
    assert page.input_value("#f-sort") == "m.VQ"


def test_runs_and_comparison(page: Any, shots: Path) -> None:
    page.goto(page.base + "#/runs")
    page.wait_for_selector("#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 2
    text = page.inner_text("#runs")
    assert "57.1%" in text and "71.4%" in text and "1 bad line" in text
    page.screenshot(path=str(shots / "runs.png"))
    page.check('input[data-run="run_a"]')
    page.check('input[data-run="run_b"]')
    page.click("#compare-btn")
    page.wait_for_selector("#compare")
    tiles = page.inner_text(".tiles")
    assert "FIXED\n2" in tiles.upper() and "BROKEN\n1" in tiles.upper()
    assert page.locator("#compare tbody tr").count() == 3  # changed samples: s00 broken, s01 and s04 fixed


def test_corrupt_line_deep_link(page: Any) -> None:
    page.goto(page.base + "#/episode?run=run_a&line=5")
    page.wait_for_selector(".error-box")
    assert "not a valid trace" in page.inner_text(".error-box")
    assert page.inner_text(".error-box pre").startswith('{"schema_version"')
