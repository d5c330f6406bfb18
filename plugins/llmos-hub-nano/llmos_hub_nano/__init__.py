"""llmos-hub plugin nano."""

__version__ = "0.1.0"
