"""A TF Serving sidecar: convert, warm up and atomically publish model versions."""
