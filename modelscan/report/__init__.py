"""``modelscan report``: one self-contained HTML page of a subject's spread.

Pure: :mod:`modelscan.report.data` gathers what the page shows through the
lineage library (``spread``, ``lineage`` with ``--check``, ``top``), and
:mod:`modelscan.report.page` renders it (the chart in ``chart.py``, the lineage
graph in ``graph_svg.py`` and ``layout.py``). No SQL, no ``db`` import.

Example:
    >>> from modelscan.report.data import gather  # doctest: +SKIP
    >>> from modelscan.report.page import render_report  # doctest: +SKIP
    >>> html = render_report(gather(store, subject))  # doctest: +SKIP
"""
