"""``evaluate --report html``: the side-by-side report as one self-contained web page.

No network and no script: inline CSS, an inline SVG bar chart, and a Content-Security-Policy
that forbids loading anything. Every string from the manifest, the models and their transcripts
is HTML-escaped. The worst utterances are those with the most errors summed over all models;
each is shown with the alignment of every model's hypothesis to the reference, in the units the
metric counts (words for WER, characters for CER), after the scoring normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import PurePath
from typing import Protocol

from whisper_tune.models import model_name
from whisper_tune.text import Edit, align_units, metric_units

REPORT_FILE = "report.html"
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #1d2327; max-width: 1100px }
h1 { font-size: 22px; margin: 0 0 4px } h2 { font-size: 18px; margin: 28px 0 8px }
.meta { color: #555 } table { border-collapse: collapse }
th, td { border: 1px solid #ccd0d4; padding: 4px 8px; text-align: left; vertical-align: top }
th { background: #f0f2f4 } td.num { text-align: right; font-variant-numeric: tabular-nums }
svg text { font: 13px system-ui, sans-serif; fill: #1d2327 } .bar { fill: #3b7dd8 }
#worst td:first-child { white-space: nowrap } .diff { font-family: ui-monospace, monospace }
.ins { background: #c8f0cf; color: #0a5c1a; text-decoration: underline }
.del { background: #fbd3d0; color: #8c1b13; text-decoration: line-through }
.sub { background: #fde9b0; color: #6b4a00 } .sub s { color: #8c1b13; margin-right: 3px }
.legend span { padding: 1px 6px; margin-right: 10px }
"""
_BAR_HEIGHT, _BAR_GAP, _LABEL_WIDTH, _BAR_WIDTH = 22, 10, 260, 560


class ScoredRow(Protocol):
    """What the page reads of one utterance's score (evaluate's ``UtteranceResult``)."""

    id: str
    audio: str
    reference: str
    hypothesis: str
    errors: int


class ModelReport(Protocol):
    """What the page reads of one model's score (evaluate's ``EvalReport``)."""

    model: str
    metric: str
    score: float
    test_data: str
    normalization: str

    @property
    def rows(self) -> Sequence[ScoredRow]: ...


def render_report(reports: Sequence[ModelReport], table: list[dict], worst: int) -> str:
    """The page: ``table`` (evaluate's comparison rows, one per model), a bar chart of the
    metric and the ``worst`` utterances with their diffs."""
    first = reports[0]
    labels = [f"{i + 1}. {model_name(r.model)}" for i, r in enumerate(reports)]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            f"<title>evaluate: {escape(first.test_data)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>whisper-tune evaluate</h1>",
            f'<p class="meta">{escape(first.test_data)}: {len(first.rows)} utterances, '
            f"{first.metric.upper()} after {escape(first.normalization)} normalisation</p>",
            "<h2>Models</h2>",
            _table(table),
            f"<h2>{first.metric.upper()} (lower is better)</h2>",
            _chart(reports, labels),
            *_worst(reports, labels, worst),
            "</body></html>",
        ]
    )


def _table(table: list[dict]) -> str:
    header = "".join(f"<th>{escape(key)}</th>" for key in ["#", *table[0]])
    rows = []
    for i, row in enumerate(table):
        cells = [f'<td class="num">{i + 1}</td>']
        for value in row.values():
            text = "n/a" if value is None else str(value)
            kind = ' class="num"' if isinstance(value, int | float) else ""
            cells.append(f"<td{kind}>{escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table id="models"><tr>{header}</tr>{"".join(rows)}</table>'


def _chart(reports: Sequence[ModelReport], labels: list[str]) -> str:
    """One horizontal bar per model, its length proportional to the score."""
    top = max(r.score for r in reports) or 1.0
    step = _BAR_HEIGHT + _BAR_GAP
    width = _LABEL_WIDTH + _BAR_WIDTH + 80
    parts = [
        f'<svg id="chart" role="img" width="{width}" height="{step * len(reports)}" '
        f'viewBox="0 0 {width} {step * len(reports)}">'
    ]
    for i, (report, label) in enumerate(zip(reports, labels, strict=True)):
        y = i * step
        bar = round(_BAR_WIDTH * report.score / top, 1)
        middle = y + _BAR_HEIGHT / 2 + 4
        parts += [
            f'<text x="{_LABEL_WIDTH - 8}" y="{middle}" text-anchor="end">{escape(label)}</text>',
            f'<rect class="bar" data-model="{escape(report.model)}" x="{_LABEL_WIDTH}" y="{y}" '
            f'width="{bar}" height="{_BAR_HEIGHT}"><title>{escape(report.model)}</title></rect>',
            f'<text x="{_LABEL_WIDTH + bar + 6}" y="{middle}">{report.score:.2%}</text>',
        ]
    return "".join(parts) + "</svg>"


def _worst(reports: Sequence[ModelReport], labels: list[str], worst: int) -> list[str]:
    """The ``worst`` utterances with errors, most errors (summed over the models) first."""
    metric = reports[0].metric
    by_utterance = list(zip(*(r.rows for r in reports), strict=True))
    ranked = sorted(
        (rows for rows in by_utterance if sum(r.errors for r in rows)),
        key=lambda rows: -sum(r.errors for r in rows),
    )[:worst]
    if not ranked:
        return ["<h2>Worst utterances</h2>", "<p>No errors.</p>"]
    legend = (
        '<p class="legend">reference vs each hypothesis, in the units '
        f"{metric.upper()} counts: "
        '<span class="ins">inserted</span><span class="del">deleted</span>'
        '<span class="sub"><s>said</s>heard</span> (substituted)</p>'
    )
    body = []
    for rows in ranked:
        body.append(
            f'<tr class="utt"><th colspan="3">{escape(rows[0].id)} '
            f"({escape(PurePath(rows[0].audio).name)}): "
            f"{sum(r.errors for r in rows)} errors</th></tr>"
            f'<tr><td>reference</td><td></td><td class="diff">{escape(rows[0].reference)}</td></tr>'
        )
        for label, row in zip(labels, rows, strict=True):
            edits = align_units(
                metric_units(row.reference, metric), metric_units(row.hypothesis, metric)
            )
            body.append(
                f'<tr><td>{escape(label)}</td><td class="num">{row.errors}</td>'
                f'<td class="diff">{_diff(edits, " " if metric == "wer" else "")}</td></tr>'
            )
    return [
        f"<h2>Worst {len(ranked)} utterances (most errors over all models)</h2>",
        legend,
        f'<table id="worst">{"".join(body)}</table>',
    ]


def _diff(edits: list[Edit], joiner: str) -> str:
    """The hypothesis with its insertions, deletions and substitutions marked."""
    parts = []
    for edit in edits:
        heard, said = joiner.join(edit.hypothesis), joiner.join(edit.reference)
        if edit.kind == "equal":
            parts.append(escape(heard))
        elif edit.kind == "substitute":
            parts.append(f'<span class="sub"><s>{escape(said)}</s>{escape(heard)}</span>')
        elif edit.kind == "insert":
            parts.append(f'<span class="ins">{escape(heard)}</span>')
        else:
            parts.append(f'<span class="del">{escape(said)}</span>')
    return joiner.join(parts)
