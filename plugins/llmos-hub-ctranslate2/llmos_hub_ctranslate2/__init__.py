"""llmos-hub plugin ``ctranslate2``: run transformers checkpoints with CTranslate2.

Public pieces: :class:`~llmos_hub_ctranslate2.backend.CTranslate2Backend` (the backend),
:func:`~llmos_hub_ctranslate2.convert.converted` (the cached conversion) and
:func:`~llmos_hub_ctranslate2.support.refusal` (why a checkpoint cannot run, known before loading).
Importing this package imports neither ctranslate2, torch nor transformers.
"""

__version__ = "0.1.0"
