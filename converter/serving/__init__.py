"""Models run the way TF Serving runs them: the TF1 Session loader, in child processes
that time candidates and compile engines, and the measures outputs and calls are compared by."""
