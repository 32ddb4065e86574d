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
#   PYTHONMALLOC=malloc valgrind --tool=memcheck \
#       --suppressions=/usr/lib/valgrind/python3.supp --track-origins=yes \
#       --leak-check=full --show-leak-kinds=definite --num-callers=40 \
#       --log-file=memcheck.log \
#       "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/test_gradients.py
#
# where PYTHON is the real interpreter (sys.executable), not a launcher script
# such as a pyenv shim, which valgrind would check instead of Python.
#
# PYTHONMALLOC=malloc sends every Python allocation through malloc, so memcheck
# sees each object; the suppression file (shipped with valgrind on Debian and
# Ubuntu, skipped when absent) silences some of CPython's known reports. Reports
# whose stack never enters cbp's extension modules (CPython's own integer
# objects, the dynamic loader) remain in the log but are not counted against
# cbp. The script exits with 1 if the tests fail or if any report (an invalid
# read or write, a use of uninitialised memory, a bad free, memory definitely
# lost) has a frame in cbp's compiled code, and prints those reports.
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
    $SUPP_ARG --track-origins=yes --num-callers=40 \
    --leak-check=full --show-leak-kinds=definite \
    --log-file="$LOG" \
    "$PYTHON" -m pytest -q -x -p no:cacheprovider "$@" || status=$?
grep -E "ERROR SUMMARY|definitely lost" "$LOG" | tail -n 2
# One report per blank-line-separated block; keep those with a frame in cbp's
# extension modules (Cython names them __pyx_..._3cbp_...; sources _epoch.c etc).
awk '
    /^==[0-9]+== $/ { if (block ~ /__pyx_[A-Za-z0-9_]*3cbp_|\((_backprop|_epoch|_blas|_optim_step)\.c:/) { print block; n++ } block = ""; next }
    { block = block $0 "\n" }
    END { printf "reports involving cbp: %d\n", n; exit (n > 0) }
' "$LOG" || status=1
exit $status
