/* Draws an OversightReport (its JSON form) with plotly.js.
   One definition for the inbox's Oversight view (served at GET /oversight/charts.js)
   and for the page `hitl-compliance report --html FILE` writes (inlined there).
   Every text from the report is set with textContent: nothing is parsed as HTML. */
"use strict";
window.drawOversight = function drawOversight(report, ids) {
  const OUTCOMES = [
    ["approve", "#2e7d32"], ["edit", "#1565c0"], ["reject", "#c62828"],
    ["expire", "#6d4c41"], ["escalate", "#ef6c00"],
  ];
  const CONFIG = { displayModeBar: false, responsive: true };
  const layout = (title, yTitle, extra) => Object.assign({
    title: { text: title, font: { size: 15 }, y: 0.98 },
    margin: { t: 40, r: 10, b: 40, l: 55 },
    legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", xanchor: "left" },
    yaxis: { title: { text: yTitle }, rangemode: "tozero" },
    paper_bgcolor: "rgba(0,0,0,0)",
  }, extra || {});

  const days = report.periods.map((p) => p.start.slice(0, 10));
  const outcomes = OUTCOMES.map(([name, color]) => ({
    type: "bar", name, x: days, y: report.periods.map((p) => p[name]), marker: { color },
  }));
  Plotly.newPlot(ids.decisions, outcomes, layout(
    `Decisions over time by outcome (per ${report.period}, UTC)`, "reviews",
    { barmode: "stack", margin: { t: 70, r: 10, b: 80, l: 55 },
      xaxis: { type: "category", tickangle: -60, automargin: true } }), CONFIG);

  const people = report.reviewers.filter((r) => r.decisions > 0);
  const names = people.map((r) => r.reviewer);
  const minutes = (s) => (s === null ? null : Math.round((s / 60) * 100) / 100);
  Plotly.newPlot(ids.times, [
    { type: "bar", name: "median", x: names, y: people.map((r) => minutes(r.median_seconds)),
      marker: { color: "#3949ab" } },
    { type: "bar", name: "90th percentile", x: names,
      y: people.map((r) => minutes(r.p90_seconds)), marker: { color: "#9fa8da" } },
  ], layout("Time to decision per reviewer", "minutes",
    { barmode: "group", margin: { t: 70, r: 10, b: 80, l: 55 },
      xaxis: { type: "category", automargin: true } }), CONFIG);

  const table = document.getElementById(ids.flags);
  const body = table.tBodies[0] || table.appendChild(document.createElement("tbody"));
  body.replaceChildren();
  for (const flag of report.flags) {
    const row = body.insertRow();
    row.className = `flag ${flag.kind}`;
    for (const text of [flag.kind.replace(/_/g, " "), flag.reviewer, flag.detail]) {
      row.insertCell().textContent = text;
    }
    // Every review behind the flag, folded: a streak can name hundreds.
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const count = flag.review_ids.length;
    summary.textContent = `${count} review${count === 1 ? "" : "s"}: ${flag.review_ids[0]}` +
      (count > 1 ? " …" : "");
    const ids = document.createElement("div");
    ids.className = "review-ids";
    ids.textContent = flag.review_ids.join(", ");
    details.append(summary, ids);
    row.insertCell().append(details);
  }
  if (!report.flags.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 4;
    cell.className = "muted";
    cell.textContent = "No rubber-stamp flags in this period.";
  }
  const t = report.totals;
  const rate = t.override_rate === null ? "n/a" : `${Math.round(t.override_rate * 100)}%`;
  const summary = document.getElementById(ids.summary);
  if (summary) {
    summary.textContent = `${t.decisions} decisions (${t.approve} approved, ${t.edit} edited, ` +
      `${t.reject} rejected), ${t.expire} expired, ${t.escalate} escalated; override rate ` +
      `${rate}; ${t.sla_breaches} SLA breaches; ${report.flags.length} flags; QA ` +
      `${report.qa_disagreements} of ${report.qa_reviews} disagreed.`;
  }
};
