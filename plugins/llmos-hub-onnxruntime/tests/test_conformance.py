"""The onnxruntime backend passes the conformance kit, with the pytorch backend as its reference."""

from __future__ import annotations

import pytest

from llmos_hub.testing import check_backend, check_plugin


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lm-sample", "classification-sample", "translation-sample"])
def test_the_backend_conforms_against_pytorch(name, tmp_path_factory, monkeypatch):
    from llmos_hub_nano.family import NanoFamily
    from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend

    monkeypatch.setenv("LLMOS_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "conformance-cache"))
    model = NanoFamily().load(name)
    check_backend(OnnxRuntimeBackend(), model, reference="pytorch", texts=["The file is", "Open the door", "A list of"])


def test_the_plugin_module_conforms():
    import llmos_hub_onnxruntime.plugin

    check_plugin(llmos_hub_onnxruntime.plugin, name="onnxruntime-under-test")
