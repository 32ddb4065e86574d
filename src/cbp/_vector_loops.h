/* The elementwise loops of training that run once per batch over whole layers or
 * the whole parameter buffer: bias + activation, activation derivative, bias
 * gradient, the SGD and Adam updates, and the copy of the parameters that the
 * trainer keeps between epochs (checked for NaN and infinity on the way).
 *
 * Wheels must run on any x86-64 processor, so the module is compiled for the
 * baseline instruction set (SSE2), which moves two doubles per instruction. On
 * Linux with GCC or Clang each loop is also compiled for AVX2 and the loader
 * picks the version the processor supports (function multi-versioning). The two
 * versions give bit-identical results: every element sees the same operations in
 * the same order, and no version fuses multiplies and adds (AVX2 alone does not
 * enable FMA). Elsewhere the baseline version is the only one.
 *
 * Each function exists for float (suffix _float) and double (suffix _double);
 * both are generated from _vector_loops_body.h.
 */
#ifndef CBP_VECTOR_LOOPS_H
#define CBP_VECTOR_LOOPS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define CBP_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define CBP_RESTRICT __restrict
#else
#define CBP_RESTRICT
#endif

/* Multi-versioning needs ifunc support: ELF, glibc (musl has no ifunc), x86-64. */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) \
    && defined(__has_attribute) && !defined(CBP_NO_MULTIVERSION)
#if __has_attribute(target_clones)
#define CBP_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef CBP_CLONES
#define CBP_CLONES
#endif

/* Every module that includes this header uses only some of the loops. */
#if defined(__GNUC__) || defined(__clang__)
#define CBP_LOOP static __attribute__((unused)) CBP_CLONES
#else
#define CBP_LOOP static
#endif

/* Which SGD loop to run: the options are fixed for a whole pass. */
enum {
    CBP_SGD_PLAIN = 0,          /* no momentum */
    CBP_SGD_FIRST_NESTEROV = 1, /* first step: the momentum buffer starts as g */
    CBP_SGD_FIRST = 2,
    CBP_SGD_NESTEROV = 3,
    CBP_SGD_MOMENTUM = 4
};

#define CBP_REAL float
#define CBP_SMALLEST FLT_MIN
#define CBP_NAME(name) cbp_##name##_float
#include "_vector_loops_body.h"
#undef CBP_REAL
#undef CBP_SMALLEST
#undef CBP_NAME

#define CBP_REAL double
#define CBP_SMALLEST DBL_MIN
#define CBP_NAME(name) cbp_##name##_double
#include "_vector_loops_body.h"
#undef CBP_REAL
#undef CBP_SMALLEST
#undef CBP_NAME

#endif
