"""Whole frozen graphs rewritten to a lower precision (bfloat16, int8 through oneDNN), in
a child process with oneDNN on; each a candidate the measurement accepts or refuses."""
