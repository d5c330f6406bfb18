"""``python -m llmos_hub`` runs the CLI."""

from .cli import main

main()
