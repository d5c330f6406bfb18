"""Start-up stays light: the CLI's cheap commands import no heavy library (checked in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "onnxruntime", "onnx", "transformers", "datasets", "evaluate", "pandas", "pyarrow", "ray", "scipy",
         "statsmodels", "ctranslate2"]

SCRIPT = """
import json, sys
from llmos_hub.cli import main
try:
    main(%r, standalone_mode=True)
except SystemExit:
    pass
print("@@" + json.dumps(sorted(m for m in %r if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["plugins"], ["plugins", "--json"], ["list", "tasks"], ["list", "models"], ["list", "backends"], ["list", "metrics"], ["bench", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_cheap_commands_import_nothing_heavy(args):
    out = subprocess.run([sys.executable, "-c", SCRIPT % (args, HEAVY)], capture_output=True, text=True, timeout=120)
    marker = [line for line in out.stdout.splitlines() if line.startswith("@@")]
    assert marker, out.stdout + out.stderr
    assert json.loads(marker[-1][2:]) == []


def test_importing_the_package_is_light():
    code = f"import sys, llmos_hub, llmos_hub.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_compare_and_leaderboard_run_their_tests_without_scipy(tmp_path):
    """The paired tests are numpy only: scipy and statsmodels are test references, never runtime imports."""
    from ._records import make_record

    paths = []
    for name, flags in (("a", [1, 1, 0, 1, 0, 1]), ("b", [1, 0, 0, 0, 0, 1])):
        table = {"ids": [str(i) for i in range(6)], "scores": {"accuracy": {"kind": "binary", "values": flags}}}
        record = make_record(model=f"x:{name}", task="clf", scores={"accuracy": sum(flags) / 6}, extra={"per_example": table})
        paths.append(str(record.save(tmp_path)))
    for args, shows in ((["compare", *paths, "--json"], '"exact McNemar"'), (["leaderboard", str(tmp_path), "--format", "json"], '"band": 1')):
        out = subprocess.run([sys.executable, "-c", SCRIPT % (args, HEAVY)], capture_output=True, text=True, timeout=120)
        marker = [line for line in out.stdout.splitlines() if line.startswith("@@")]
        assert marker and shows in out.stdout, out.stdout + out.stderr
        assert json.loads(marker[-1][2:]) == []
