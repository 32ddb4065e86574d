"""Shared test setup.

The tests import the installed ``cbp`` and nothing from ``src/``. The helper
module ``reference.py`` lives beside the tests, so this directory is put on
``sys.path`` whatever import mode or rootdir pytest was started with.
"""

import os
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
