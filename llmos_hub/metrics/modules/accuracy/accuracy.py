"""Accuracy: the fraction of examples whose predicted label equals the reference label.

Labels arrive as integer ids (the llmos-hub wrapper maps any hashable labels to ids first, so
equality is Python's, not a string form's).
"""

import datasets
import evaluate

_DESCRIPTION = "Accuracy: correct predictions / all predictions."

_INPUTS = """
predictions: list of integer label ids.
references: list of integer label ids.
Returns: {"accuracy": float on 0-1}.
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references):
        correct = sum(1 for p, r in zip(predictions, references) if p == r)
        return {"accuracy": correct / len(references)}
