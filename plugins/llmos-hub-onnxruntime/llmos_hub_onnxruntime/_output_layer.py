"""The output layer of an exported graph as products over pieces of the vocabulary.

An exported language model ends in ``logits = x @ Transpose(E)``, ``E`` the ``[vocab, width]``
output matrix (tied to the input embedding, whose ``Gather`` reads the same initializer). When a
session starts, ONNX Runtime folds the ``Transpose`` into a new tensor and packs it into MLAS's
layout, and the file pages it read, the folded copy and the packed copy are all resident at that
moment: for GPT-2-small's 50,257 x 768 (147 MiB) the session peaked at 686 MiB and held 539 after.
ONNX Runtime packs each weight whole and unmaps it once packed, so the peak is set by the largest
weight: the rest of the model packs one layer at a time.

:func:`split_output_product` rewrites that product as ``Gemm(x, E[rows], transB=1)`` over pieces of
at most :data:`PIECE_BYTES`, joined by one ``Concat``. Each piece is an initializer of its own whose
external data is the same byte range of the data file (no copy on disk), so ONNX Runtime maps,
packs and unmaps them one at a time: the same session peaked at 558 MiB. ``Gemm`` with ``transB``
is standard ONNX (every execution provider runs it) and packs from the stored layout, so no
``Transpose`` is folded; the logits are bitwise those of the single product (each column's sum runs
over the width in the same order).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PIECE_BYTES", "split_output_product"]

#: The largest piece of the output matrix one product reads (and a session packs at once).
PIECE_BYTES = 16 << 20
#: At most this many pieces: a vocabulary of hundreds of thousands of rows gets larger pieces rather
#: than hundreds of nodes.
MAX_PIECES = 64
#: Piece boundaries fall on multiples of this many rows, MLAS's packing panel (no padded columns).
ROW_MULTIPLE = 16


def split_output_product(path: Path, *, piece_bytes: int | None = None, output: str = "logits") -> int:
    """Rewrite the graph at ``path`` so its ``output`` product reads the output matrix in pieces;
    returns the number of pieces (0 when the graph was left as it is).

    Only the exporter's pattern is rewritten: ``output`` made by a ``MatMul`` whose second input is a
    ``Transpose`` (perm ``[1, 0]``, read by nothing else) of a float32 ``[vocab, width]`` initializer in
    external data larger than ``piece_bytes`` (default :data:`PIECE_BYTES`). Anything else is left alone.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    made_by = {name: node for node in graph.node for name in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    product = made_by.get(output)
    if product is None or product.op_type != "MatMul" or product.input[1] not in made_by:
        return 0
    transpose = made_by[product.input[1]]
    perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
    if transpose.op_type != "Transpose" or perm != [1, 0] or readers.get(transpose.output[0]) != 1:
        return 0
    matrix = next((init for init in graph.initializer if init.name == transpose.input[0]), None)
    if (matrix is None or matrix.data_type != TensorProto.FLOAT or len(matrix.dims) != 2
            or matrix.data_location != TensorProto.EXTERNAL):
        return 0
    piece_bytes = PIECE_BYTES if piece_bytes is None else piece_bytes
    rows, width = (int(d) for d in matrix.dims)
    row_bytes = width * 4
    if rows * row_bytes <= piece_bytes:
        return 0
    external = {entry.key: entry.value for entry in matrix.external_data}
    offset = int(external.get("offset", 0))
    pieces = min(MAX_PIECES, -(-rows * row_bytes // piece_bytes))
    step = -(-(-(-rows // pieces)) // ROW_MULTIPLE) * ROW_MULTIPLE  # rows per piece, rounded up to the panel
    bounds = list(range(0, rows, step)) + [rows]

    x, prefix = product.input[0], f"{output}_piece"
    constants = {
        f"{prefix}.start": [0], f"{prefix}.last": [-1], f"{prefix}.rows": [rows], f"{prefix}.flat": [-1, width],
    }
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in constants.items())
    nodes = [
        # [..., width] -> [n, width] for Gemm, and back to [..., rows] after.
        helper.make_node("Shape", [x], [f"{prefix}.shape"], name=f"{prefix}_shape"),
        helper.make_node("Slice", [f"{prefix}.shape", f"{prefix}.start", f"{prefix}.last"], [f"{prefix}.lead"],
                         name=f"{prefix}_lead"),
        helper.make_node("Concat", [f"{prefix}.lead", f"{prefix}.rows"], [f"{prefix}.out_shape"], axis=0,
                         name=f"{prefix}_out_shape"),
        helper.make_node("Reshape", [x, f"{prefix}.flat"], [f"{prefix}.x"], name=f"{prefix}_flatten"),
    ]
    parts = []
    for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
        piece = TensorProto(name=f"{matrix.name}.rows_{start}_{end}", data_type=TensorProto.FLOAT,
                            dims=[end - start, width], data_location=TensorProto.EXTERNAL)
        for key, value in (("location", external["location"]), ("offset", str(offset + start * row_bytes)),
                           ("length", str((end - start) * row_bytes))):
            piece.external_data.add(key=key, value=value)
        graph.initializer.append(piece)
        parts.append(f"{prefix}.{i}")
        nodes.append(helper.make_node("Gemm", [f"{prefix}.x", piece.name], [parts[-1]], transB=1, name=f"{prefix}_gemm_{i}"))
    nodes.append(helper.make_node("Concat", parts, [f"{prefix}.joined"], axis=1, name=f"{prefix}_join"))
    nodes.append(helper.make_node("Reshape", [f"{prefix}.joined", f"{prefix}.out_shape"], [output], name=f"{prefix}_unflatten"))

    kept = list(graph.node)
    at = kept.index(product)
    del graph.node[:]
    graph.node.extend([*(n for n in kept[:at] if n is not transpose), *nodes, *(n for n in kept[at + 1:] if n is not transpose)])
    if readers.get(matrix.name) == 1:  # the Transpose was its only reader: the pieces replace it
        graph.initializer.remove(matrix)
    for info in [v for v in graph.value_info if v.name == transpose.output[0]]:
        graph.value_info.remove(info)
    onnx.save(model, str(path))
    return len(parts)
