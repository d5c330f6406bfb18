"""Conformance kit for plugin authors, shipped as a pytest plugin (entry point ``pytest11``).

Placeholder: the conformance checks land with the contributor SDK.
"""
