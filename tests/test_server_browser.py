"""The web page in Debian's chromium driven by Playwright: upload a file, watch the
transcript stream in, download it as SRT, and keep a screenshot."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from whisper_tune.server import ServerConfig, create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed"),
]


@contextlib.contextmanager
def fake_microphone_page(wav: Path) -> Iterator:
    """A Chromium page whose microphone (permission granted) plays ``wav`` in a loop."""
    from playwright.sync_api import sync_playwright

    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_mic
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_page_uploads_a_file_and_streams_the_transcript(
    serve_app, tiny_en_transcriber, english_clip, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    config = ServerConfig(more_models=("base",))  # the page lists both, base never loads
    url = serve_app(create_app(config, tiny_en_transcriber))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            blocked = []  # the page must work under its Content-Security-Policy
            page.on("console", lambda m: blocked.append(m.text) if "Policy" in m.text else None)
            page.goto(f"{url}/")
            assert page.is_disabled("#go")
            expect(page.locator("#model option")).to_have_text(["tiny.en", "base"])
            page.select_option("#model", "tiny.en")
            page.set_input_files("#file", str(english_clip[0]))
            page.select_option("#language", "en")
            page.click("#go")
            expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=120_000)
            transcript = page.inner_text("#transcript").lower()
            assert all(word in transcript for word in ("weather", "snow", "tomorrow"))
            assert "[00:00:00.000 → " in page.inner_text("#transcript")
            with page.expect_download() as download:
                page.click("#save_srt")
            srt = Path(download.value.path()).read_text(encoding="utf-8")
            assert download.value.suggested_filename == "english.srt"
            assert srt.startswith("1\n00:00:00,000 --> ") and "snow" in srt.lower()
            screenshot = tmp_path / "server_page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            assert not blocked, blocked
            print(f"\nscreenshot: {screenshot}")
        finally:
            browser.close()


def test_page_records_from_the_microphone(serve_app, tiny_en_transcriber, english_clip):
    """Chromium's fake microphone plays the clip; the page records it with MediaRecorder
    (webm/opus), uploads it and shows what was said."""
    from playwright.sync_api import expect

    url = serve_app(create_app(ServerConfig(), tiny_en_transcriber))
    with fake_microphone_page(english_clip[0]) as page:
        page.goto(f"{url}/")
        page.click("#record")
        expect(page.locator("#status")).to_have_text(re.compile("^recording…"))
        page.wait_for_timeout(4000)  # the clip is 2.9 s long
        page.click("#record")
        expect(page.locator("#status")).to_have_text("recording ready")
        assert page.inner_text("#source").startswith("recording.")
        page.click("#go")
        status = re.compile("^(done|error)")
        expect(page.locator("#status")).to_have_text(status, timeout=120_000)
        assert page.inner_text("#status").startswith("done"), page.inner_text("#status")
        transcript = page.inner_text("#transcript").lower()
        assert "snow" in transcript and "tomorrow" in transcript, transcript


def test_page_live_mode_shows_words_as_they_are_spoken(
    serve_app, tiny_en_transcriber, english_clip
):
    """Live: the fake microphone plays the clip (in a loop) through the AudioWorklet and the
    realtime WebSocket; committed words appear, then the turn with its times, under the
    page's policy (the worklet allowed by URL, nothing else)."""
    from playwright.sync_api import expect

    url = serve_app(create_app(ServerConfig(), tiny_en_transcriber))
    with fake_microphone_page(english_clip[0]) as page:
        blocked = []
        page.on("console", lambda m: blocked.append(m.text) if "Policy" in m.text else None)
        page.goto(f"{url}/")
        page.select_option("#language", "en")
        page.click("#live")
        expect(page.locator("#status")).to_have_text(re.compile("^live: listening"))
        expect(page.locator("#transcript")).to_contain_text("snow", timeout=20_000)
        expect(page.locator("#transcript .seg:not(.live) .ts").first).to_contain_text(
            "[00:00:0", timeout=20_000
        )  # a turn ended by the VAD, with its times
        page.click("#live")
        expect(page.locator("#status")).to_have_text("stopped", timeout=10_000)
        assert "weather" in page.inner_text("#transcript").lower()
        assert not blocked, blocked


def test_page_live_mode_says_when_the_mic_is_denied_or_the_server_refuses(
    serve_app, tiny_en_transcriber, english_clip
):
    from playwright.sync_api import expect, sync_playwright

    url = serve_app(create_app(ServerConfig(realtime_sessions=0), tiny_en_transcriber))
    fake_device = ["--use-fake-device-for-media-stream"]  # no fake UI: permission is asked
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_device
        )
        try:
            denied = browser.new_context().new_page()  # the prompt is dismissed
            denied.goto(f"{url}/")
            denied.click("#live")
            expect(denied.locator("#status")).to_have_text(re.compile("^microphone unavailable: "))
            assert denied.get_attribute("#status", "class") == "error"
            granted = browser.new_context(permissions=["microphone"]).new_page()
            granted.goto(f"{url}/")
            granted.click("#live")  # the server takes no live sessions at all
            expect(granted.locator("#status")).to_have_text(
                re.compile(r"^the server closed the live connection \(1013"), timeout=10_000
            )
            assert granted.inner_text("#live") == "◉ Live"  # ready to try again
        finally:
            browser.close()
