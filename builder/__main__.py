"""``python -m builder``: the same as the ``quay-builder`` command."""

import sys

from builder.worker import main

if __name__ == "__main__":
    sys.exit(main())
