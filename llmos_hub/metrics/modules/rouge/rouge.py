"""ROUGE-1/2/L/Lsum F-measures from Google's ``rouge_score``, averaged over examples.

Aggregation is the plain mean of per-example F-measures (deterministic; the Hub's ``rouge`` uses
rouge_score's BootstrapAggregator, whose "mid" is the median of unseeded bootstrap means).
``rougeLsum`` is rouge_score's summary-level LCS, which splits sentences on newlines: put one
sentence per line in predictions and references. rouge_score's default tokenizer lowercases and
keeps only ASCII letters and digits, so text in other scripts scores as empty; that is the reference
implementation's behaviour and is kept. ``return_per_example=True`` also returns every example's
F-measures, from which the caller derives a standard error.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_DESCRIPTION = "ROUGE F-measures from rouge_score (Lin, 2004), mean over examples."

_CITATION = """@inproceedings{lin-2004-rouge,
  title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
  author = "Lin, Chin-Yew",
  booktitle = "Text Summarization Branches Out",
  year = "2004",
}"""

_INPUTS = """
predictions: list of summaries (one sentence per line for rougeLsum).
references: list of reference summaries, or of lists of references (then each type's score is the
    reference with the best F-measure, rouge_score's ``score_multi``).
use_stemmer: Porter-stem tokens before matching (rouge_score's option).
return_per_example: also return {"per_example": {rouge_type: [F, ...]}}.
Returns: {"rouge1", "rouge2", "rougeL", "rougeLsum"}: mean F-measure on 0-1.
"""


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Value("string"),
                    }
                ),
            ],
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, use_stemmer=False, return_per_example=False):
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
        per_example = {rouge_type: [] for rouge_type in ROUGE_TYPES}
        for prediction, reference in zip(predictions, references):
            if isinstance(reference, (list, tuple)):  # several references: rouge_score's best match
                scores = scorer.score_multi(list(reference), prediction)
            else:
                scores = scorer.score(reference, prediction)  # rouge_score's order: (target, prediction)
            for rouge_type in ROUGE_TYPES:
                per_example[rouge_type].append(float(scores[rouge_type].fmeasure))
        result = {t: sum(v) / len(v) for t, v in per_example.items()}
        if return_per_example:
            result["per_example"] = per_example
        return result
