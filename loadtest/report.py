"""Files a run leaves behind: JSON with every figure (`--out`) and a small report (`--report DIR`):
a latency histogram and throughput over time as PNG (matplotlib, Agg: no display needed) and an
index.html that shows them with the summary figures.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hourglass.loadtest.stats import RunResult
from hourglass.loadtest.summary import FIGURE_ROWS, fmt, fmt_ratio

HISTOGRAM_PNG = "latency_histogram.png"
THROUGHPUT_PNG = "throughput.png"
INDEX_HTML = "index.html"


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise RuntimeError("--report needs matplotlib: pip install 'hourglass[loadtest]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_latency(results: Sequence[RunResult], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    values = [[v * 1000 for v in r.latencies_s] for r in results]
    top = max((max(v) for v in values if v), default=1.0)
    bins = [top * i / 50 for i in range(51)]
    for r, v in zip(results, values, strict=True):
        if v:
            ax.hist(v, bins=bins, alpha=0.6, label=r.label or r.address)
    ax.set_xlabel("start-to-completion latency (ms)")
    ax.set_ylabel("workflows")
    ax.set_title(f"Latency: {results[0].scenario}, driver {results[0].driver}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_throughput(results: Sequence[RunResult], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for r in results:
        series = r.timeline()
        ax.plot(
            [p["t_s"] for p in series], [p["workflows_per_s"] for p in series], label=r.label or r.address
        )
    ax.set_xlabel("seconds since the first start (rounds back to back)")
    ax.set_ylabel("workflows completed per second")
    ax.set_title(f"Throughput: {results[0].scenario}, driver {results[0].driver}")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _figures_html(results: Sequence[RunResult], ratios: dict[str, float | None] | None) -> str:
    head = "".join(f"<th>{html.escape(r.label or r.address)}</th>" for r in results)
    if ratios is not None:
        head += "<th>hourglass / reference</th>"
    rows = []
    figures = [r.figures() for r in results]
    for key, label, pattern in FIGURE_ROWS:
        cells = "".join(f"<td>{html.escape(fmt(f[key], pattern))}</td>" for f in figures)
        if ratios is not None:
            cells += f"<td>{html.escape(fmt_ratio(ratios.get(key)))}</td>"
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th>figure</th>{head}</tr>{''.join(rows)}</table>"


def write_report(
    folder: str | Path,
    results: Sequence[RunResult],
    title: str,
    ratios: dict[str, float | None] | None = None,
    command: str = "",
) -> list[Path]:
    """Write the PNGs and index.html into `folder`; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _plot_latency(results, folder / HISTOGRAM_PNG)
    _plot_throughput(results, folder / THROUGHPUT_PNG)
    errors = sorted({e for r in results for e in r.errors})
    error_rows = "".join(
        f"<tr><th>{html.escape(e)}</th>"
        + "".join(f"<td>{r.errors.get(e, 0)}</td>" for r in results)
        + "</tr>"
        for e in errors
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for r in results for n in r.notes)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child{{text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Started {html.escape(results[0].started_at)}. {html.escape(command)}</p>
{_figures_html(results, ratios)}
{"<h2>Errors</h2><table>" + error_rows + "</table>" if errors else ""}
<h2>Latency</h2><img src="{HISTOGRAM_PNG}" alt="latency histogram">
<h2>Throughput over time</h2><img src="{THROUGHPUT_PNG}" alt="throughput over time">
{"<h2>Notes</h2><ul>" + notes + "</ul>" if notes else ""}
</body></html>
"""
    (folder / INDEX_HTML).write_text(page)
    return [folder / HISTOGRAM_PNG, folder / THROUGHPUT_PNG, folder / INDEX_HTML]
