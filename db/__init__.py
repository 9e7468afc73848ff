"""The SQL index: the only layer that runs SQL."""
