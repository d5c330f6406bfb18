"""Export the modules of a :class:`~llmos_hub.LoadedModel` to ONNX files, checked by ``onnx.checker``.

Each module is exported on its own, through the fixed calling convention of its role (see
:mod:`._roles`), with dynamic batch and sequence axes. The default exporter is ``torch.onnx.export(...,
dynamo=True)`` (``torch.export`` + onnxscript, the one PyTorch maintains); ``exporter="torchscript"``
selects the older tracer, which is about ten times faster to export and covers a different set of
operators. A failure becomes one :class:`ExportError` line naming the model, the module and the
operator, so a bench can mark that run failed and go on with the others.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmos_hub import LlmosHubError, LoadedModel, UsageError

from ._roles import ROLES, example_inputs

__all__ = ["DEFAULT_OPSET", "EXPORTERS", "ExportError", "export_model", "export_module"]

EXPORTERS = ("dynamo", "torchscript")
#: Opset per exporter: the dynamo exporter's native opset, and the torchscript exporter's newest
#: well-tested one.
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}
# Encoder first: the decoder's example input is the encoder's output.
_ORDER = ("encoder", "decoder", "causal_lm", "classifier")


class ExportError(LlmosHubError):
    """A module that could not be exported; ``role`` and ``operator`` say which and why."""

    def __init__(self, message: str, *, role: str, operator: str | None) -> None:
        super().__init__(message)
        self.role = role
        self.operator = operator


def export_model(
    model: LoadedModel,
    folder: str | Path,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
) -> dict[str, Any]:
    """Write ``<role>.onnx`` into ``folder`` for every module of ``model``; returns what was written.

    The answer maps each role to its file name, input and output names, and records the exporter
    and opset used (it becomes part of the cache manifest).
    """
    import torch

    if exporter not in EXPORTERS:
        raise UsageError(f"unknown ONNX exporter {exporter!r}; use one of: {', '.join(EXPORTERS)}")
    opset = opset or DEFAULT_OPSET[exporter]
    unknown = sorted(set(model.modules) - set(ROLES))
    if unknown:
        raise UsageError(f"cannot export {model.name}: unknown module role(s) {', '.join(unknown)}")
    folder = Path(folder)
    graphs: dict[str, Any] = {}
    encoder_width: int | None = None
    for role in sorted(model.modules, key=_ORDER.index):
        module = model.modules[role]
        args = example_inputs(model, role, encoder_width)
        if role == "encoder":
            with torch.no_grad():
                encoder_width = int(module.eval()(*args).shape[-1])
        file_name = f"{role}.onnx"
        export_module(module, args, folder / file_name, role=role, model_name=model.name, exporter=exporter, opset=opset)
        graphs[role] = {"file": file_name, "inputs": list(ROLES[role].inputs), "outputs": list(ROLES[role].outputs)}
    return {"exporter": exporter, "opset": opset, "graphs": graphs}


def export_module(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    *,
    role: str,
    model_name: str,
    exporter: str = "dynamo",
    opset: int | None = None,
) -> Path:
    """Export one module following ``role``'s convention to ``path`` and check the result."""
    import onnx
    import torch

    opset = opset or DEFAULT_OPSET[exporter]
    spec = ROLES[role]
    module = module.eval()
    try:
        with _quiet(), torch.no_grad():
            if exporter == "dynamo":
                program = torch.onnx.export(
                    module,
                    args,
                    None,
                    input_names=list(spec.inputs),
                    output_names=list(spec.outputs),
                    dynamic_shapes=_dynamic_shapes(spec.inputs, spec.axes),
                    opset_version=opset,
                    dynamo=True,
                    optimize=True,
                    verbose=False,
                )
                program.save(str(path))
            else:
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=list(spec.inputs),
                    output_names=list(spec.outputs),
                    dynamic_axes={name: dict(axes) for name, axes in spec.axes.items()},
                    opset_version=opset,
                    dynamo=False,
                )
        onnx.checker.check_model(str(path), full_check=True)
    except LlmosHubError:
        raise
    except Exception as exc:
        raise _export_error(exc, role=role, model_name=model_name, exporter=exporter, opset=opset) from exc
    return path


def _dynamic_shapes(inputs: tuple[str, ...], axes: Mapping[str, Mapping[int, str]]) -> dict[str, Any]:
    """``torch.export`` dims for the inputs; one ``Dim`` per axis name so shared axes stay equal.

    ``total`` (mask length = cache length + new tokens) is derived from the others, so it is left to
    ``torch.export`` to infer (``Dim.AUTO``) rather than declared independent.
    """
    from torch.export import Dim

    dims: dict[str, Any] = {}
    shapes: dict[str, Any] = {}
    for name in inputs:
        shapes[name] = {
            axis: Dim.AUTO if dim_name == "total" else dims.setdefault(dim_name, Dim(dim_name))
            for axis, dim_name in axes.get(name, {}).items()
        }
    return shapes


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation warnings and registry log lines."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


_OPERATOR_PATTERNS = (
    re.compile(r"OpOverload\(op='([^']+)', overload='([^']+)'\)"),  # dynamo: no ONNX function found
    re.compile(r"target=torch\.ops\.([\w.]+)"),  # dynamo: node that failed to translate
    re.compile(r"operator '([^']+)'"),  # torchscript: unsupported operator
    re.compile(r"unrecognized namespace (\S+?)\.?\s"),  # torchscript: custom operator
    re.compile(r"No Op registered for (\w+)"),  # onnxruntime / checker
)


def _operator_of(text: str) -> str | None:
    for pattern in _OPERATOR_PATTERNS:
        match = pattern.search(text)
        if match:
            groups = [g for g in match.groups() if g and g != "default"]
            return ".".join(groups)
    return None


def _export_error(exc: BaseException, *, role: str, model_name: str, exporter: str, opset: int) -> ExportError:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = "\n".join(str(item) for item in chain)
    operator = _operator_of(text)
    where = f"cannot export module {role!r} of {model_name} to ONNX ({exporter} exporter, opset {opset})"
    if operator:
        reason = f"operator {operator} is not supported"
    else:
        innermost = chain[-1]
        first = next((line.strip() for line in str(innermost).splitlines() if line.strip()), "")
        reason = f"{type(innermost).__name__}: {first[:200]}"
    other = "torchscript" if exporter == "dynamo" else "dynamo"
    hint = f"try options={{'exporter': '{other}'}} or run the model with backend 'pytorch'"
    return ExportError(f"{where}: {reason}; {hint}", role=role, operator=operator)
