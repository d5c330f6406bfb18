"""A text longer than the tokenizer's ``model_max_length`` prints nothing: the engine cuts prompts to the
model's window itself, and transformers' own warning leaked to stderr in the middle of a run."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import sys
from llmos_hub import load_plugins
model = load_plugins().get("models", "hf").load(sys.argv[1])
print(len(model.tokenizer.encode("hello world " * 40)))
"""


def test_a_long_text_draws_no_transformers_warning(tmp_path):
    from llmos_hub_transformers.tiny import save_tiny

    folder = tmp_path / "gpt2"
    save_tiny("gpt2", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 8
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, check=True)
    assert int(done.stdout.split()[-1]) > 8  # the text is longer than model_max_length
    assert "Token indices sequence length" not in done.stderr, done.stderr
