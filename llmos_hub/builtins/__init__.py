"""The core's own plugins: built-in tasks and metrics, registered through the public hooks."""
