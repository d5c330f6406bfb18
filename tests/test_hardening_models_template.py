"""The model family ``llmos-hub new model`` writes follows the rules it states: files only from inside
the model's folder, one-line errors naming the file and the fix, found before any weights load.

Plugin authors copy this template, so it is checked here in process (the slow scaffold test installs
it and runs its own tests): the generated package is imported from a temporary folder.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from llmos_hub import DataError

NAME = "hardening-bigram"
PACKAGE = "llmos_hub_hardening_bigram"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """``(family module, a built model folder)`` of a freshly scaffolded model plugin."""
    pytest.importorskip("safetensors")
    from llmos_hub._scaffold import scaffold

    dest = tmp_path_factory.mktemp("scaffold")
    scaffold("model", NAME, dest, host=None)
    sys.path.insert(0, str(dest / f"llmos-hub-{NAME}"))
    try:
        family = importlib.import_module(f"{PACKAGE}.family")
        build = importlib.import_module(f"{PACKAGE}.build")
        folder = build.build(dest / "model", ["The file is open."], trained_on="one sentence")
        yield family, folder
    finally:
        sys.path.remove(str(dest / f"llmos-hub-{NAME}"))
        for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[module]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "config.json: not valid JSON (Expecting property name enclosed in double quotes"),
    ('{"max_length": "lots"}', "config.json: field 'max_length' must be an integer from 1 to 1048576, not \"lots\""),
    ('{"max_length": 1000000000000}', "config.json: field 'max_length' must be an integer from 1 to 1048576"),
    ("[1, 2]", "config.json: expected a JSON object"),
], ids=["not-json", "max_length-text", "max_length-huge", "not-an-object"])
def test_a_bad_config_is_one_line_naming_the_file_while_planning(generated, tmp_path, content, expected):
    module, folder = generated
    copy = _copy(folder, tmp_path)
    (copy / "config.json").write_text(content)
    for call in (module.Family().capabilities, module.Family().inspect, module.Family().load):
        with pytest.raises(DataError) as error:
            call(str(copy))
        assert expected in str(error.value) and "\n" not in str(error.value), str(error.value)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_file_linked_from_outside_the_folder_is_never_read(generated, tmp_path, name):
    module, folder = generated
    copy = _copy(folder, tmp_path)
    (copy / name).unlink()
    (copy / name).symlink_to(folder / name)
    for call in (module.Family().capabilities, module.Family().inspect, module.Family().load):
        with pytest.raises(DataError, match=f"refusing (weight file )?{name}: it (is|leads) outside the model's folder"):
            call(str(copy))


def test_a_truncated_weight_file_is_named_with_the_fix(generated, tmp_path):
    module, folder = generated
    copy = _copy(folder, tmp_path)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(DataError, match=f"truncated or corrupt safetensors file .*make it again with: python -m {PACKAGE}.build"):
        module.Family().inspect(str(copy))


def test_a_good_folder_loads(generated):
    module, folder = generated
    model = module.Family().load(str(folder))
    assert model.max_length == 1024 and model.provenance.weights_sha256 == module.Family().inspect(str(folder)).weights_sha256
