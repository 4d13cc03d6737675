"""Graph work on a signature: flatten it into one GraphDef, freeze its read-only variables,
fold it into the shapes TensorFlow's fusions want, and read its node names."""
