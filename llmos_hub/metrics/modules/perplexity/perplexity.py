"""Token, word and byte perplexity and bits per byte, as lm-evaluation-harness defines them.

Inputs are each document's summed log-likelihood (natural log) and number of scored tokens
(from ``loglikelihood_rolling``) and the document's original text. Every ratio is of corpus sums,
not a mean of per-document values:

- token_perplexity = exp(-ΣLL / Σtokens)
- word_perplexity = exp(-ΣLL / Σwords), words = len(re.split(r"\\s+", text))
- byte_perplexity = exp(-ΣLL / ΣUTF-8 bytes)
- bits_per_byte = -ΣLL / Σbytes / ln 2
"""

import math
import re

import datasets
import evaluate

_DESCRIPTION = "Perplexities and bits per byte from per-document log-likelihoods (lm-eval's definitions)."

_INPUTS = """
predictions: list of {"logprob": float, "num_tokens": int}, one per document.
references: list of the documents' texts.
return_statistics: also return per-document [logprob, tokens, words, bytes] rows under "statistics".
Returns: {"token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"}.
"""


def count_words(text):
    """lm-evaluation-harness's word count: pieces of the raw text split on whitespace runs."""
    return len(re.split(r"\s+", text))


def scores_from_sums(logprob, tokens, words, num_bytes):
    """The four numbers from corpus sums; the caller guarantees positive denominators."""
    return {
        "token_perplexity": math.exp(-logprob / tokens),
        "word_perplexity": math.exp(-logprob / words),
        "byte_perplexity": math.exp(-logprob / num_bytes),
        "bits_per_byte": -logprob / num_bytes / math.log(2),
    }


class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": {
                        "logprob": datasets.Value("float64"),
                        "num_tokens": datasets.Value("int64"),
                    },
                    "references": datasets.Value("string"),
                }
            ),
            reference_urls=["https://github.com/EleutherAI/lm-evaluation-harness"],
        )

    def _compute(self, predictions, references, return_statistics=False):
        rows = [
            [
                float(prediction["logprob"]),
                int(prediction["num_tokens"]),
                count_words(text),
                len(text.encode("utf-8")),
            ]
            for prediction, text in zip(predictions, references)
        ]
        sums = [math.fsum(column) for column in zip(*rows)]
        if min(sums[1:]) <= 0:
            raise ValueError("the corpus has no scored tokens or no text bytes")
        result = scores_from_sums(*sums)
        if return_statistics:
            result["statistics"] = rows
        return result
