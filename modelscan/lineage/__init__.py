"""Lineage and spread: a pure domain over the rows ``db/`` loads (no SQL here).

- ``rows``: the typed records db/ hands in, and the :class:`LineageIndex` protocol;
- ``evidence``: copies, conversions, claims, similarity decisions, best parent;
- ``infer``: ``link`` (load through the index, decide here, write through it);
- ``subjects``, ``graph``, ``local``, ``check``: ``lineage`` and ``--check``;
- ``spread``: copies, takedown cost, survival, ``--top``.

References are modelscan/refs.py's; sketch similarity is scanner/similarity.py's.
Importing the package imports none of its modules, so ``db/`` can import
``modelscan.lineage.rows`` alone.

Example:
    >>> from modelscan.lineage.infer import link
    >>> stats = link(store)  # doctest: +SKIP
"""
