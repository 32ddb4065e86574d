#!/bin/sh
# Run core tests under valgrind's memcheck. Run by hand; it takes minutes.
#
#   tools/memcheck.sh [pytest arguments]      (default: tests/test_gradients.py)
#
# Build first, in place (or point PYTHONPATH at a CBP_DEBUG=1 build):
#
#   python3 setup.py build_ext --inplace
#
# The command it runs is
#
#   PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=1 \
#       --suppressions=/usr/lib/valgrind/python3.supp --track-origins=yes \
#       --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
#       "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/test_gradients.py
#
# where PYTHON is the real interpreter (sys.executable), not a launcher script
# such as a pyenv shim, which valgrind would check instead of Python.
# PYTHONMALLOC=malloc sends every Python allocation through malloc, so memcheck
# sees each object; the suppression file (shipped with valgrind on Debian and
# Ubuntu, skipped when absent) silences CPython's own known reports. The exit
# status is 1 if memcheck found an invalid read or write, a use of
# uninitialised memory or a bad free; definite leaks are listed in the log
# (look for frames in cbp's extension modules) but do not change the status,
# because CPython and NumPy keep some allocations alive until exit.
# The log goes to memcheck.log (set MEMCHECK_LOG to change it).
set -eu
status=0
cd "$(dirname "$0")/.."
LOG=${MEMCHECK_LOG:-memcheck.log}
SUPP=/usr/lib/valgrind/python3.supp
SUPP_ARG=""
if [ -f "$SUPP" ]; then
    SUPP_ARG="--suppressions=$SUPP"
fi
PYTHON=$(python3 -c "import sys; print(sys.executable)")
if [ "$#" -eq 0 ]; then
    set -- tests/test_gradients.py
fi
PYTHONPATH=${PYTHONPATH:-src} PYTHONMALLOC=malloc valgrind --tool=memcheck \
    --error-exitcode=1 $SUPP_ARG --track-origins=yes \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
    --log-file="$LOG" \
    "$PYTHON" -m pytest -q -x -p no:cacheprovider "$@" || status=$?
grep -E "ERROR SUMMARY|definitely lost" "$LOG" | tail -n 2
exit $status
