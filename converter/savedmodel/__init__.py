"""The SavedModel in and out: loading it and its signature, the inputs fed to it, writing
the converted one whole, and installing its engines into a serving cache."""
