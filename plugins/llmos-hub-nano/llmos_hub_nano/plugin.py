"""Hook implementations of the nano plugin (placeholder)."""
