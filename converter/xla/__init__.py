"""The xla backend: freeze the signature, cut what XLA compiles into segments, compile an
engine per segment and shape set, time it against native, dispatch in-graph, report."""
