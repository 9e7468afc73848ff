"""Pure parsing and hashing of model files; never executes a pickle, no network, no SQL.

Example:
    >>> from modelscan.scanner.fingerprint import fingerprint
    >>> fingerprint("model.safetensors").content_id  # doctest: +SKIP
"""
