"""Hook implementations of the pytorch plugin (placeholder)."""
