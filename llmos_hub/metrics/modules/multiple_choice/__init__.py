"""Package marker so the evaluate module in this folder ships with llmos-hub."""
