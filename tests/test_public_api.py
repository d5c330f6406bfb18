"""The public SDK surface is exactly ``llmos_hub.__all__``, sorted, and every name is documented."""

from __future__ import annotations

import llmos_hub


def test_all_is_sorted_and_exists():
    names = list(llmos_hub.__all__)
    assert names == sorted(names)
    for name in names:
        assert hasattr(llmos_hub, name), name


def test_public_names_are_documented():
    for name in llmos_hub.__all__:
        obj = getattr(llmos_hub, name)
        if callable(obj) and not isinstance(obj, str):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_only_public_modules_have_public_names():
    import pkgutil

    public = {m.name for m in pkgutil.iter_modules(llmos_hub.__path__) if not m.name.startswith("_")}
    # Public modules are the documented entry points; everything else is private (_name).
    assert public <= {"attention", "bench", "builtins", "cli", "compare", "decoding", "errors", "hookspecs", "hub", "leaderboard", "metrics", "stats", "tasks", "testing"}
