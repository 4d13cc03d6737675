"""TF-TRT's converter API on current TensorFlow, with XLA-compiled engines."""
