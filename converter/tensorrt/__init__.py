"""The tensorrt backend: TensorFlow's own TF-TRT converts; its result is reported and saved
our way."""
