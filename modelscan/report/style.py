"""The report's stylesheet, inlined into the page (screen and print).

Example:
    >>> "@media print" in CSS
    True
"""

from __future__ import annotations

CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --rule: #d9d9de; --live: #1e7b34;
  --gone: #b3261e; --card: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 8px; }
h1, h2, h3 { line-height: 1.2; }
h1 { font-size: 26px; margin: 0 0 18px; }
h2 { font-size: 19px; margin: 30px 0 10px; border-bottom: 1px solid var(--rule);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
article > h2.subject { font-size: 22px; border: 0; margin-top: 40px; }
dl.measures { display: grid; grid-template-columns: repeat(auto-fill,
  minmax(150px, 1fr)); gap: 10px; margin: 0; }
.measure { background: var(--card); border: 1px solid var(--rule);
  border-radius: 8px; padding: 10px 12px; }
.measure dt { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; }
.measure dd { margin: 4px 0 0; font-size: 24px; font-weight: 650;
  font-variant-numeric: tabular-nums; }
figure.chart { margin: 0; }
figure.chart svg { width: 100%; max-width: 860px; height: auto; }
.graph-box svg { max-width: 100%; height: auto; }
figcaption, .note, footer { color: var(--muted); font-size: 13px; }
.graph-box { overflow-x: auto; border: 1px solid var(--rule); border-radius: 8px;
  padding: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 6px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--rule);
  vertical-align: top; }
td.w { overflow-wrap: anywhere; }
table.copies td:not(.w) { white-space: nowrap; }
th { background: var(--card); font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfbfc; }
code { font-size: 12px; }
.status-live { color: var(--live); font-weight: 600; }
.status-gone { color: var(--gone); font-weight: 600; }
.none { color: var(--muted); }
dl.method dt { font-weight: 600; margin-top: 8px; }
dl.method dd { margin: 2px 0 0 18px; }
details summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
footer { max-width: 1180px; margin: 0 auto; padding: 12px 28px 24px; }
@media print {
  @page { margin: 14mm; }
  body { font-size: 11px; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  .measure, figure, tr, li { break-inside: avoid; }
  .graph-box { overflow: visible; border: 0; }
  details > *:not(summary) { display: block; }
  a { color: inherit; text-decoration: none; }
  table.copies a::after { content: " " attr(href); font-size: 9px;
    color: var(--muted); }
  .measure { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""
