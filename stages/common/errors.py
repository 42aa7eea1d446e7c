"""Failing clearly: expected input problems raise `InputError`; stage entry points print its
one-line message and exit non-zero instead of showing a traceback."""
from __future__ import annotations

import sys
from typing import Callable


class InputError(Exception):
    """Bad input the user can fix: shown as one line, never as a traceback."""


def run_stage(main: Callable[[list[str] | None], None]) -> None:
    """Run a stage's main(); turn InputError into `error: ...` on stderr and exit code 2."""
    try:
        main(None)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
