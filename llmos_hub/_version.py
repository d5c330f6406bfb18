"""The version of the ``llmos-hub`` distribution, kept in one place."""

__version__ = "0.1.0"
