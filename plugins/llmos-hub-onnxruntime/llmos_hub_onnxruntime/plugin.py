"""Hook implementations of the onnxruntime plugin (placeholder)."""
