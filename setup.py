"""Declares cbp's Cython extension modules; all metadata lives in pyproject.toml.

Set ``CBP_DEBUG=1`` in the environment to build with bounds checking, wraparound
and initialisation checks turned back on (slower, for hunting memory errors).
"""

import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CBP_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
}

MODULES = ["_blas", "_backprop", "_optim_step", "_epoch"]

extensions = [
    Extension(
        f"cbp.{name}",
        [f"src/cbp/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # The optimizer's update starts a helper thread (POSIX threads).
        extra_compile_args=[] if sys.platform == "win32" else ["-pthread"],
        extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions, compiler_directives=directives, include_path=["src"]
    )
)
