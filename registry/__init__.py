"""Model hosts: one module per host, pure parse_* functions plus a small fetching class."""
