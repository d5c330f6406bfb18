"""The built-in metrics as ``evaluate`` modules, one folder each, loaded by local path.

Each folder holds ``<name>/<name>.py`` with an :class:`evaluate.Metric` subclass, the layout
``evaluate.load(<folder>)`` expects. They are loaded from here, never by a bare name (a bare name
reaches the Hub). The ``__init__.py`` files only make setuptools ship the folders as package data.
"""
