"""ONNX Runtime's telemetry is off by default: no device id file, no uploader, unless the user opts in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Loads the plugins as the CLI does, then makes a real session (the point where ORT's 1DS telemetry
# would have created ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid).
_SCRIPT = """
import os, sys
from pathlib import Path
from llmos_hub import load_plugins
host = load_plugins()
host.get("backends", "onnxruntime")
import numpy as np, onnx
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
path = Path(sys.argv[1]) / "relu.onnx"
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
from llmos_hub_onnxruntime.session import make_session
out = make_session(path).run(None, {"x": np.array([-1.0, 2.0], dtype=np.float32)})[0]
print(os.environ.get("ORT_DISABLE_TELEMETRY"), out.tolist())
"""


def _run(tmp_path: Path, **env: str) -> tuple[str, list[Path]]:
    home = tmp_path / "home"
    home.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    environ.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), **env)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), sorted(p.relative_to(home) for p in home.rglob("*"))


@pytest.mark.slow
def test_loading_the_plugin_turns_telemetry_off_and_writes_no_device_id(tmp_path):
    out, files = _run(tmp_path)
    assert out == "1 [0.0, 2.0]"
    assert not [p for p in files if "onnxruntime" in str(p).lower() or "Microsoft" in str(p)], files


def test_an_explicit_choice_is_kept(monkeypatch):
    import importlib

    import llmos_hub_onnxruntime

    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    importlib.reload(llmos_hub_onnxruntime)
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY")
    importlib.reload(llmos_hub_onnxruntime)
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
