"""One module per container format; each turns header bytes into a :class:`Layout`."""
