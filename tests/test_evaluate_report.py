"""``evaluate --report html``: the page of a real two-model evaluation, opened in Debian's
chromium with Playwright (table, chart, diff visible; no request leaves the file), and a report
folder that cannot be written is a one-line error before any decoding."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from test_server_browser import CHROMIUM, CHROMIUM_ARGS
from whisper_tune.cli import main
from whisper_tune.corpus_text import ENGLISH_GENERAL
from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.synth import save_wav, synthesize

# tiny.en hears the clip's "The weather forecast says it will snow tomorrow."; against this
# reference that is a substitution (report → forecast), an insertion (it), a deletion (heavily)
ALTERED = "The weather report says will snow heavily tomorrow."
INJECTED = "<script>window.pwned=1</script>"  # must show as text, never run


@pytest.fixture
def report_dir(english_clip, tiny_whisper_en, tmp_path):
    """The report folder of one ``evaluate --report html`` run: bundled tiny.en and a tiny
    random Whisper (CTranslate2, fast; it hears nothing) on two clips, scored case-folded with
    punctuation kept (so the injected markup reaches the page as the reference)."""
    from whisper_tune.convert.ct2_export import convert_to_ct2

    random_model = tmp_path / "random-ct2"
    convert_to_ct2(str(tiny_whisper_en), random_model, "float32", check=False)
    clip, _ = english_clip
    second = save_wav(tmp_path / "general.wav", synthesize(ENGLISH_GENERAL[0], "en", seed=1))
    manifest = tmp_path / "test.jsonl"
    write_manifest(
        manifest,
        [Utterance(str(clip), ALTERED), Utterance(str(second), f"{ENGLISH_GENERAL[0]} {INJECTED}")],
    )
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as done:
        main(
            ["evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"]
            + [str(random_model), "--report", "html", "--output_dir", str(out)]
            + ["--num_workers", "0", "--remove_pun", "false", "--english_normalizer", "false"]
        )
    assert done.value.code == 0
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed")
def test_html_report_in_chromium(report_dir):
    from playwright.sync_api import expect, sync_playwright

    table = json.loads((report_dir / "comparison.json").read_text())
    with (report_dir / "utterances.csv").open(encoding="utf-8") as handle:
        utterances = list(csv.DictReader(handle))
    page_file = report_dir / "report.html"
    text = page_file.read_text(encoding="utf-8")
    assert not any(url in text for url in ("://", "href", "src=", "url(", "@import"))
    url = page_file.as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            requests, console = [], []
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: console.append(message.text))
            page.goto(url)
            page.wait_for_load_state("networkidle")

            # the side-by-side table: a header and one row per model, as comparison.json
            rows = page.locator("#models tr")
            expect(rows).to_have_count(1 + len(table))
            for i, row in enumerate(table):
                cells = rows.nth(i + 1).locator("td")
                expect(cells.nth(1)).to_have_text(row["model"])
                expect(cells.nth(3)).to_have_text(str(row["wer"]))

            # the chart: one visible bar per model, longer for the worse score
            bars = page.locator("#chart rect.bar")
            expect(bars).to_have_count(len(table))
            widths = [bars.nth(i).bounding_box()["width"] for i in range(len(table))]
            stock, random_model = (row["wer"] for row in table)
            assert 0 < stock < random_model, table
            assert 0 < widths[0] < widths[1], widths
            for i in range(len(table)):
                expect(bars.nth(i)).to_be_visible()

            # the worst utterances, most errors over both models first, each diffed
            headers = page.locator("#worst tr.utt")
            expect(headers).to_have_count(len(utterances))
            totals = sorted(
                (sum(int(row[k]) for k in row if k.startswith("errors_")) for row in utterances),
                reverse=True,
            )
            shown = [int(t.split(": ")[-1].split()[0]) for t in headers.all_inner_texts()]
            assert shown == totals
            stock_diff = page.locator("#worst td.diff").filter(has_text="forecast").first
            for kind, text in (("sub", "reportforecast"), ("ins", "it"), ("del", "heavily")):
                span = stock_diff.locator(f"span.{kind}")
                expect(span.first).to_be_visible()
                assert text in span.all_inner_texts(), (kind, span.all_inner_texts())
            legend = page.locator(".legend")
            for kind in ("ins", "del", "sub"):
                expect(legend.locator(f"span.{kind}")).to_be_visible()

            # transcripts are text: the injected markup shows, nothing ran, nothing loaded
            expect(page.locator("#worst")).to_contain_text(INJECTED)
            assert page.locator("script").count() == 0
            assert page.evaluate("typeof window.pwned") == "undefined"
            assert requests == [url], requests
            assert not console, console
            page.screenshot(path=str(report_dir / "report.png"), full_page=True)
        finally:
            browser.close()


def test_report_folder_that_cannot_be_written_is_a_one_line_error(english_clip, tmp_path, capsys):
    """Checked before the manifest is read or a model loaded: a plain file stands where the
    folder would go."""
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    manifest = tmp_path / "test.jsonl"
    write_manifest(manifest, [Utterance(str(english_clip[0]), english_clip[1])])
    with pytest.raises(SystemExit) as done:
        main(
            ["evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"]
            + ["--report", "html", "--output_dir", str(blocker / "report")]
        )
    assert done.value.code == 2
    printed = capsys.readouterr()
    assert "test data" not in printed.out  # stopped before reading the manifest
    error = printed.err.strip()
    assert "\n" not in error and "cannot write the report to" in error
    assert str(blocker / "report") in error


def test_cer_report_diffs_characters():
    """A CER report aligns characters, as the metric counts them, and marks each edit."""
    from whisper_tune.evaluate import EvalReport, UtteranceResult, comparison_rows
    from whisper_tune.evaluate_html import render_report

    rows = [UtteranceResult("1", "a.wav", "今天天气很好", "今天天汽很好啊", 2, 6, 1.0)]
    report = EvalReport("cer", 2 / 6, 1, 2, 6, 1.0, 1.0, 1.0, "base", "zh.jsonl", rows=rows)
    page = render_report([report], comparison_rows([report]), 20)
    assert '今天天<span class="sub"><s>气</s>汽</span>很好<span class="ins">啊</span>' in page
    assert "CER (lower is better)" in page and "33.33%" in page
