"""An oversight report as one self-contained HTML page, charts drawn by plotly.js.

The page inlines plotly.js (from the installed `plotly` package: the `report`
extra) and the chart script the inbox's Oversight view also uses
(`_oversight_charts.js`), so it opens offline and loads nothing. The report's
JSON is embedded with `<`, `>` and `&` escaped; the tables are written here with
every value through `html.escape`.
"""

from __future__ import annotations

import html
from importlib import resources

from hitl_compliance.errors import ConfigurationError
from hitl_compliance.oversight import OutcomeStats, OversightReport

__all__ = ["charts_js", "plotly_js", "render"]

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
  margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub, .muted { color: #616e7c; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(26rem, 1fr)); gap: 1rem; }
.chart { min-height: 22rem; border: 1px solid #d9e2ec; border-radius: 8px; background: #fff; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #d9e2ec;
  vertical-align: top; }
th { background: #f5f7fa; } td.num, th.num { text-align: right; }
td:last-child { word-break: break-all; }
"""

_COLUMNS = ("approve", "edit", "reject", "expire", "escalate", "decisions")


def plotly_js() -> str:
    """plotly.js (minified) from the installed `plotly` package.

    Raises:
        ConfigurationError: plotly is not installed (names the extra).
    """
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ConfigurationError(
            'Oversight charts need plotly: pip install "hitl-compliance[report]"'
        ) from exc
    return str(get_plotlyjs())


def charts_js() -> str:
    """The script that draws a report (`window.drawOversight(report, ids)`)."""
    return (
        resources.files("hitl_compliance")
        .joinpath("_oversight_charts.js")
        .read_text(encoding="utf-8")
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _script_json(report: OversightReport) -> str:
    text = report.model_dump_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def _cells(stats: OutcomeStats) -> str:
    values = [str(getattr(stats, c)) for c in _COLUMNS]
    values += [
        _rate(stats.override_rate),
        _minutes(stats.median_seconds),
        _minutes(stats.p90_seconds),
        str(stats.sla_breaches),
    ]
    return "".join(f'<td class="num">{_e(v)}</td>' for v in values)


def _head(first: str, extra: tuple[str, ...] = ()) -> str:
    names = [*_COLUMNS, "override", "median min", "p90 min", "SLA breaches", *extra]
    return f"<tr><th>{_e(first)}</th>" + "".join(f'<th class="num">{_e(n)}</th>' for n in names)


def render(report: OversightReport) -> str:
    """The page: a summary, the three charts, and tables per reviewer and per rule."""
    reviewers = "".join(f"<tr><td>{_e(r.reviewer)}</td>{_cells(r)}</tr>" for r in report.reviewers)
    rules = "".join(
        f"<tr><td>{_e(r.rule)}</td>{_cells(r)}<td class='num'>{r.qa_reviews}</td>"
        f"<td class='num'>{r.qa_disagreements}</td>"
        f"<td class='num'>{_e(_rate(r.qa_disagreement_rate))}</td></tr>"
        for r in report.rules
    )
    window = f"{report.since.isoformat()} to {report.until.isoformat()} (until excluded)"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Oversight report · hitl-compliance</title>
<style>{_CSS}</style>
<script>{plotly_js()}</script>
</head>
<body>
<h1>Oversight report</h1>
<p class="sub">{_e(window)}</p>
<p id="ov-summary"></p>
<div class="charts">
  <div id="ov-decisions" class="chart"></div>
  <div id="ov-times" class="chart"></div>
</div>
<h2>Rubber-stamp flags</h2>
<table id="ov-flags"><thead><tr><th>Flag</th><th>Reviewer</th><th>What</th><th>Reviews</th>
</tr></thead><tbody></tbody></table>
<h2>Per reviewer</h2>
<table><thead>{_head("reviewer")}</thead><tbody>{reviewers}</tbody></table>
<h2>Per rule (with QA)</h2>
<table><thead>{_head("rule", ("QA", "QA disagree", "QA rate"))}</thead><tbody>{rules}</tbody>
</table>
<script>{charts_js()}</script>
<script>
drawOversight({_script_json(report)},
  {{ decisions: "ov-decisions", times: "ov-times", flags: "ov-flags", summary: "ov-summary" }});
</script>
</body>
</html>
"""
