"""``python -m diagnostics PATH [--format text|json|markdown] [--node NAME]``: diagnose a bundle without Django."""

from __future__ import annotations

import sys

from diagnostics.cli import main

if __name__ == "__main__":
    sys.exit(main())
