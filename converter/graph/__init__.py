"""Graph work: flatten a signature, find what compiles, cut it into segments."""
