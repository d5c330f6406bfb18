"""``llmos-hub new``: write a pip-installable plugin whose tests already pass.

Each template is a complete distribution: ``pyproject.toml`` with the ``llmos_hub`` entry point, a hook
implementation that registers something working, and a test that runs the conformance kit
(:mod:`llmos_hub.testing`) on it. A newcomer edits working code instead of starting from a blank page.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from ._fileio import atomic_write
from .errors import UsageError

KINDS = ("task", "backend", "model")
_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


def _pyproject(dist: str, package: str, entry: str, description: str, deps: list[str], data: bool) -> str:
    data_block = f'\n[tool.setuptools.package-data]\n"{package}" = ["*.yaml", "data/*.jsonl"]\n' if data else ""
    return textwrap.dedent(f'''\
        [build-system]
        requires = ["setuptools>=68", "wheel"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.1.0"
        description = "{description}"
        requires-python = ">=3.10"
        dependencies = {json.dumps(["llmos-hub>=0.1,<0.2", *deps])}

        [project.optional-dependencies]
        test = ["pytest>=8"]

        [project.entry-points.llmos_hub]
        {entry} = "{package}.plugin"

        [tool.setuptools.packages.find]
        include = ["{package}*"]
        ''') + data_block


def _task_files(name: str, package: str) -> dict[str, str]:
    from .tasks import BUILTIN_DIR

    rows = (BUILTIN_DIR / "data" / "translation-sample" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    yaml_text = textwrap.dedent(f'''\
        # A task is data: edit this file, not Python. See the fields of the built-in tasks
        # (`llmos-hub list tasks`, files in llmos_hub/tasks/builtin/) for every option.
        name: {name}
        version: "1"
        kind: translation
        description: English→German messages (replace with your data)
        source: >-
          20 messages copied from llmos-hub's translation-sample (GNU message catalogs of Debian packages,
          GPL/LGPL); replace with your own data and say where it comes from and under which licence
        data: data
        splits:
          test: test.jsonl
        default_split: test
        fields:
          id: id
          input: en
          target: de
        prompt: "{{input}}"
        generation:
          max_new_tokens: 64
          stop: ["\\n"]
        metrics:
          chrf: {{}}
          bleu: {{}}
        primary_metric: chrf
        ''')
    plugin = textwrap.dedent(f'''\
        """llmos-hub plugin: registers the task declared in {name}.yaml."""

        from pathlib import Path

        from llmos_hub import hookimpl

        TASK_FILE = Path(__file__).with_name("{name}.yaml")


        @hookimpl
        def register_tasks(register):
            def make():
                from llmos_hub.tasks import task_from_file

                return task_from_file(TASK_FILE)

            register("{name}", make, description="English→German messages (replace with your data)")
        ''')
    test = textwrap.dedent(f'''\
        from llmos_hub.testing import check_plugin, check_task

        from {package} import plugin


        def test_plugin_registers_a_conforming_task():
            host = check_plugin(plugin)
            check_task(host.get("tasks", "{name}"))
        ''')
    return {
        f"{package}/{name}.yaml": yaml_text,
        f"{package}/data/test.jsonl": "\n".join(rows) + "\n",
        f"{package}/plugin.py": plugin,
        "tests/test_plugin.py": test,
    }


def _backend_files(name: str, package: str) -> dict[str, str]:
    plugin = textwrap.dedent(f'''\
        """llmos-hub plugin: backend '{name}'.

        It starts as the PyTorch backend under a new name, so it works at once; replace `prepare` with
        your runtime. A backend only supplies forward steps: the shared decoding engine
        (llmos_hub.decoding) does greedy and beam search on top of them.
        """

        from llmos_hub import hookimpl


        @hookimpl
        def register_backends(register):
            def make():
                from llmos_hub_pytorch.backend import PyTorchBackend

                class Backend(PyTorchBackend):
                    name = "{name}"

                return Backend()

            register("{name}", make, description="my backend (starts as a copy of pytorch)")
        ''')
    test = textwrap.dedent(f'''\
        from llmos_hub.testing import check_backend, check_plugin

        from {package} import plugin


        def test_backend_conforms():
            host = check_plugin(plugin)
            model = host.get("models", "nano").load("lm-sample")
            check_backend(host.get("backends", "{name}"), model)
        ''')
    return {f"{package}/plugin.py": plugin, "tests/test_plugin.py": test}


def _model_files(name: str, package: str) -> dict[str, str]:
    plugin = textwrap.dedent(f'''\
        """llmos-hub plugin: model family '{name}'.

        It starts by loading nano checkpoint folders (config.json, model.safetensors, tokenizer.json) under
        its own family name; replace `load` with your architecture. Keep the module calling conventions
        of llmos_hub.LoadedModel so every backend can run and export your models.
        """

        import dataclasses

        from llmos_hub import ModelFamily, hookimpl


        class Family(ModelFamily):
            name = "{name}"

            def load(self, ref, *, revision=None):
                from llmos_hub_nano.family import NanoFamily

                return dataclasses.replace(NanoFamily().load(ref, revision=revision), family=self.name)


        @hookimpl
        def register_models(register):
            register("{name}", Family, description="my model family (starts as nano checkpoints)")
        ''')
    test = textwrap.dedent(f'''\
        from llmos_hub.testing import check_model_family, check_plugin

        from {package} import plugin


        def test_family_conforms():
            host = check_plugin(plugin)
            check_model_family(host.get("models", "{name}"), "classification-sample")
        ''')
    return {f"{package}/plugin.py": plugin, "tests/test_plugin.py": test}


def scaffold(kind: str, name: str, dest: str | Path = ".") -> list[Path]:
    """Write the ``kind`` plugin called ``name`` under ``dest/llmos-hub-<name>``; returns the files."""
    if kind not in KINDS:
        raise UsageError(f"cannot scaffold {kind!r}; choose one of {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise UsageError(f"plugin name {name!r} must be lowercase letters, digits and '-' (e.g. my-task)")
    dist = f"llmos-hub-{name}"
    package = "llmos_hub_" + name.replace("-", "_")
    root = Path(dest) / dist
    if root.exists():
        raise UsageError(f"{root} already exists; choose another name or remove it")
    deps = {"task": [], "backend": ["llmos-hub-pytorch"], "model": ["llmos-hub-nano"]}[kind]
    files = {"task": _task_files, "backend": _backend_files, "model": _model_files}[kind](name, package)
    files["pyproject.toml"] = _pyproject(dist, package, name, f"llmos-hub {kind} plugin '{name}'", deps, kind == "task")
    files[f"{package}/__init__.py"] = f'"""llmos-hub {kind} plugin {name!r}."""\n'
    files["README.md"] = (
        f"# {dist}\n\nA llmos-hub {kind} plugin.\n\n```bash\npip install -e '.[test]' && pytest\n"
        f"llmos-hub plugins   # shows {name}\n```\n"
    )
    written = []
    for rel, text in sorted(files.items()):
        written.append(atomic_write(root / rel, text))
    return written
