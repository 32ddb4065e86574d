"""``python -m cbp``: the same command line as the ``cbp`` script."""

import sys

from cbp.cli import main

if __name__ == "__main__":
    sys.exit(main())
