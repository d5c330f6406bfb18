"""Multiple-choice accuracy from per-choice log-likelihoods, as lm-evaluation-harness defines it.

One log-likelihood per choice (lm-eval: context = ``doc_to_text``, continuation = target delimiter +
choice). With ``lls`` the summed log-likelihoods of one example's choices and ``choices`` their
texts *without* the delimiter (lm-eval's ``doc_to_choice``), as ``ConfigurableTask.process_results``
in lm_eval/api/task.py (v0.4.9 to v0.4.13) computes them:

- acc = 1 if argmax(lls) == gold
- acc_norm = 1 if argmax(lls / [len(c) for c in choices]) == gold (length in *characters*)
- acc_bytes = 1 if argmax(lls / [len(c.encode("utf-8")) for c in choices]) == gold (lm-eval 0.4.13)

argmax is ``numpy.argmax``: a tie goes to the first maximum. Each score is the mean over examples
(lm-eval's ``mean``: sum / len).
"""

import datasets
import evaluate
import numpy as np

KEYS = ("acc", "acc_norm", "acc_bytes")

_DESCRIPTION = "acc, acc_norm and acc_bytes of multiple-choice log-likelihoods (lm-eval's definitions)."

_INPUTS = """
predictions: list of {"logprobs": [float per choice], "choices": [choice text per choice]}.
references: list of gold choice indices (int).
return_per_example: also return {"per_example": {"acc": [...], "acc_norm": [...], "acc_bytes": [...],
    "pred": [...], "pred_norm": [...], "pred_bytes": [...]}}.
Returns: {"acc", "acc_norm", "acc_bytes"} on 0-1.
"""


def choose(logprobs, choices):
    """The chosen index by raw, per-character and per-byte log-likelihood (numpy.argmax ties)."""
    lls = np.asarray(logprobs, dtype=np.float64)
    completion_len = np.array([float(len(c)) for c in choices])
    byte_length = np.array([float(len(c.encode("utf-8"))) for c in choices])
    return int(np.argmax(lls)), int(np.argmax(lls / completion_len)), int(np.argmax(lls / byte_length))


class MultipleChoice(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": {
                        "logprobs": datasets.Sequence(datasets.Value("float64")),
                        "choices": datasets.Sequence(datasets.Value("string")),
                    },
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://github.com/EleutherAI/lm-evaluation-harness"],
        )

    def _compute(self, predictions, references, return_per_example=False):
        per_example = {key: [] for key in (*KEYS, "pred", "pred_norm", "pred_bytes")}
        for prediction, gold in zip(predictions, references):
            if len(prediction["logprobs"]) != len(prediction["choices"]):
                raise ValueError("each prediction needs one log-likelihood per choice")
            if not 0 <= gold < len(prediction["choices"]):
                raise ValueError(f"gold index {gold} is not one of the {len(prediction['choices'])} choices")
            picks = choose(prediction["logprobs"], prediction["choices"])
            for key, pick in zip(("pred", "pred_norm", "pred_bytes"), picks):
                per_example[key].append(pick)
            for key, pick in zip(KEYS, picks):
                per_example[key].append(1.0 if pick == gold else 0.0)
        result = {key: sum(per_example[key]) / len(per_example[key]) for key in KEYS}
        if return_per_example:
            result["per_example"] = per_example
        return result
