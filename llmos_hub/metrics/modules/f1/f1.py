"""Macro-averaged F1 over the labels seen in references or predictions.

Per label, F1 = 2·TP / (2·TP + FP + FN), which equals 2PR/(P+R) and is 0 when TP is 0 (the usual
zero-division convention: a label never predicted correctly scores 0, including one that appears only
in predictions). The macro average is the unweighted mean over the label set
``set(references) | set(predictions)``, as scikit-learn's ``f1_score(average="macro")`` does
when it is not given ``labels``.
"""

import datasets
import evaluate

_DESCRIPTION = "Macro-F1 over the labels seen in references and predictions."

_INPUTS = """
predictions: list of integer label ids.
references: list of integer label ids.
Returns: {"macro_f1": float on 0-1}.
"""


class F1(evaluate.Metric):
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
        labels = set(references) | set(predictions)
        true_pos = {label: 0 for label in labels}
        false_pos = {label: 0 for label in labels}
        false_neg = {label: 0 for label in labels}
        for p, r in zip(predictions, references):
            if p == r:
                true_pos[p] += 1
            else:
                false_pos[p] += 1
                false_neg[r] += 1
        f1 = [
            2 * true_pos[label] / (2 * true_pos[label] + false_pos[label] + false_neg[label])
            for label in labels
        ]
        return {"macro_f1": sum(f1) / len(f1)}
