"""llmos-hub plugin pytorch."""

__version__ = "0.1.0"
