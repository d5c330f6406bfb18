"""llmos-hub model family ``hf``: Hugging Face ``transformers`` models behind the fixed module conventions.

Importing this package imports neither torch nor transformers; the family's factory does, on first use.
"""

__version__ = "0.1.0"
