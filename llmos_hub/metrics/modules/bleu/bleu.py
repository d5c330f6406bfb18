"""BLEU exactly as sacrebleu's ``corpus_bleu`` computes it, plus per-sentence statistics.

The score goes through sacrebleu's own ``BLEU`` object, so the number and its signature are
sacrebleu's. ``return_statistics=True`` also returns each sentence's sufficient statistics
(hypothesis and reference lengths, n-gram matches and totals): a bootstrap resamples those rows
instead of re-tokenizing the corpus a thousand times.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus BLEU from sacrebleu (Post, 2018), with its signature."

_CITATION = """@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation",
  year = "2018",
}"""

_INPUTS = """
predictions: list of hypothesis strings.
references: list of lists of reference strings (the same number of references for every example).
tokenize, lowercase, smooth_method, smooth_value, use_effective_order, force: as sacrebleu.corpus_bleu.
return_statistics: also return per-sentence sufficient statistics under "statistics".
Returns: {"bleu": float on 0-100, "signature": str}.
"""


def reference_streams(references):
    """sacrebleu wants one stream per reference position; we get references per example."""
    counts = {len(refs) for refs in references}
    if len(counts) != 1 or 0 in counts:
        raise ValueError("every example needs the same, non-zero number of references")
    return [list(stream) for stream in zip(*references)]


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(
        self,
        predictions,
        references,
        tokenize=sacrebleu.BLEU.TOKENIZER_DEFAULT,
        lowercase=False,
        smooth_method="exp",
        smooth_value=None,
        use_effective_order=False,
        force=False,
        return_statistics=False,
    ):
        metric = sacrebleu.BLEU(
            lowercase=lowercase,
            force=force,
            tokenize=tokenize,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            effective_order=use_effective_order,
        )
        streams = reference_streams(references)
        # The two steps of BLEU.corpus_score, kept apart so the statistics are extracted once.
        metric._check_corpus_score_args(predictions, streams)
        statistics = metric._extract_corpus_statistics(predictions, streams)
        score = metric._aggregate_and_compute(statistics)
        result = {"bleu": float(score.score), "signature": metric.get_signature().format()}
        if return_statistics:
            result["statistics"] = [[int(x) for x in row] for row in statistics]
        return result
