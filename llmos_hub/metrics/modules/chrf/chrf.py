"""chrF (and chrF++ with ``word_order=2``) exactly as sacrebleu's ``corpus_chrf`` computes it.

As for BLEU, the score and signature are sacrebleu's, and ``return_statistics=True`` also returns
each sentence's character and word n-gram statistics for a fast bootstrap.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus chrF from sacrebleu (Popovic, 2015), with its signature."

_CITATION = """@inproceedings{popovic-2015-chrf,
  title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja",
  booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
  year = "2015",
}"""

_INPUTS = """
predictions: list of hypothesis strings.
references: list of lists of reference strings (the same number of references for every example).
char_order, word_order, beta, lowercase, whitespace, eps_smoothing: as sacrebleu.CHRF
(whitespace=False is corpus_chrf's remove_whitespace=True).
return_statistics: also return per-sentence statistics under "statistics".
Returns: {"chrf": float on 0-100, "signature": str}.
"""


def reference_streams(references):
    """sacrebleu wants one stream per reference position; we get references per example."""
    counts = {len(refs) for refs in references}
    if len(counts) != 1 or 0 in counts:
        raise ValueError("every example needs the same, non-zero number of references")
    return [list(stream) for stream in zip(*references)]


class Chrf(evaluate.Metric):
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
        char_order=sacrebleu.CHRF.CHAR_ORDER,
        word_order=sacrebleu.CHRF.WORD_ORDER,
        beta=sacrebleu.CHRF.BETA,
        lowercase=False,
        whitespace=False,
        eps_smoothing=False,
        return_statistics=False,
    ):
        metric = sacrebleu.CHRF(
            char_order=char_order,
            word_order=word_order,
            beta=beta,
            lowercase=lowercase,
            whitespace=whitespace,
            eps_smoothing=eps_smoothing,
        )
        streams = reference_streams(references)
        # The two steps of CHRF.corpus_score, kept apart so the statistics are extracted once.
        metric._check_corpus_score_args(predictions, streams)
        statistics = metric._extract_corpus_statistics(predictions, streams)
        score = metric._aggregate_and_compute(statistics)
        result = {"chrf": float(score.score), "signature": metric.get_signature().format()}
        if return_statistics:
            result["statistics"] = [[int(x) for x in row] for row in statistics]
        return result
