"""Requests for the tests of the converter's warm child (`converter.serving.warm_child`):
the request directory's file ``do`` says what to do."""

from __future__ import annotations

import os
import pathlib
import sys


def answer(directory: pathlib.Path) -> dict[str, object]:
    """``pid``: the child's pid and its TF_XLA_FLAGS; ``fail``: raise an error;
    ``die``: say why on stderr and exit at once."""
    what = (directory / "do").read_text()
    if what == "fail":
        raise ValueError("this request was asked to fail")
    if what == "die":
        print("dying as asked", file=sys.stderr, flush=True)
        os._exit(3)
    return {"pid": os.getpid(), "flags": os.environ.get("TF_XLA_FLAGS", "")}
