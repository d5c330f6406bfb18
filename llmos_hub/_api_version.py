"""Which plugin API versions this host loads (see :data:`llmos_hub.hookspecs.API_VERSION`).

Same rule as npe2's manifest ``schema_version`` and SemVer: equal major versions, and a plugin's minor
version no newer than the host's (a plugin built for 2.3 may use what 2.3 added; a 2.1 host lacks it).
"""

from __future__ import annotations

import re

from .errors import PluginError
from .hookspecs import API_VERSION, API_VERSION_ATTRIBUTE

__all__ = ["declared_api_version", "parse_api_version"]

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def parse_api_version(text: str) -> tuple[int, int]:
    """``"2.0"`` → ``(2, 0)``; a one-line :class:`PluginError` for anything else."""
    match = _VERSION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise PluginError(f"{API_VERSION_ATTRIBUTE} = {text!r} is not a 'MAJOR.MINOR' version like {API_VERSION!r}")
    return int(match.group(1)), int(match.group(2))


def declared_api_version(plugin: object, *, host_version: str = API_VERSION) -> str | None:
    """The API version ``plugin`` declares (``None`` if it declares none), checked against the host's.

    Raises :class:`PluginError` naming both versions and the fix when the host cannot load the plugin.
    """
    declared = getattr(plugin, API_VERSION_ATTRIBUTE, None)
    if declared is None:
        return None
    major, minor = parse_api_version(declared)
    host_major, host_minor = parse_api_version(host_version)
    if major < host_major:
        raise PluginError(
            f"written for plugin API {declared}, but this llmos-hub supports API {host_version}; "
            f"update the plugin to API {host_major}.x (or install an llmos-hub that supports {major}.x)"
        )
    if major > host_major or minor > host_minor:
        raise PluginError(
            f"needs plugin API {declared}, but this llmos-hub supports API {host_version}; "
            "upgrade llmos-hub (pip install -U llmos-hub)"
        )
    return str(declared)
