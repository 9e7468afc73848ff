"""``modelscan serve``'s Datasette metadata (``metadata.py``): the index explained.

Example:
    >>> from modelscan.web.metadata import datasette_metadata
    >>> sorted(datasette_metadata("index")["databases"])
    ['index']
"""
