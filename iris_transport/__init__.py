"""iris-transport: IRIS Cloud Direct messaging over any cloud broker."""

__version__ = "0.1.0"
