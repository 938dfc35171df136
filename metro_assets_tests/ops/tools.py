"""Command-line tools of the environment the tests run in (not a fixed ``.venv``).

The console scripts a package installs (``dagster``, ``uvicorn``) sit next to
the interpreter that has it installed, so the suite runs in any environment
the project is installed into: the project's ``.venv``, a CI image, a conda env.
"""

import shutil
import sys
from pathlib import Path


def tool(name: str) -> Path:
    """The console script ``name`` next to ``sys.executable`` (else on ``PATH``).

    ``sys.executable`` is not resolved: a virtualenv's ``bin/python`` is a symlink
    to the base interpreter, whose folder does not hold the venv's scripts.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable} nor on PATH")
    return Path(found)
