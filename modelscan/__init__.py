"""modelscan: model-file provenance scanner and registry crawler.

Example:
    >>> from modelscan.scanner.fingerprint import fingerprint
    >>> fp = fingerprint("model.safetensors")  # doctest: +SKIP
    >>> fp.sha256  # doctest: +SKIP
"""

__version__ = "0.1.0"
