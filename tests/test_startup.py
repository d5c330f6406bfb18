"""Start-up stays light: the CLI's cheap commands import no heavy library (checked in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "onnxruntime", "onnx", "transformers", "datasets", "evaluate", "pandas", "pyarrow", "ray"]

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
