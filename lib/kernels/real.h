/*
 * real.h - the element type of typed code.
 *
 * Files of the typed modules (kernels, graph ops, optimizers, run engine) are
 * compiled twice, once with MGRAD_REAL_BITS=32 and once with 64 (see
 * lib/meson.build).  In them `real` is float or double and R(name) appends
 * _f32 or _f64, so that both variants link into one library.  Untyped code
 * reaches typed code through the explicit _f32/_f64 names.
 */
#ifndef MGRAD_REAL_H
#define MGRAD_REAL_H

#include <float.h>
#include <math.h>

#if MGRAD_REAL_BITS == 32
typedef float real;
#define R(name) name##_f32
#define REAL_EPSILON FLT_EPSILON
#define REAL_DTYPE MGRAD_DTYPE_F32
#define RSQRT sqrtf
#define REXP expf
#define RLOG logf
#define RLOG1P log1pf
#define RTANH tanhf
#define RERF erff
#define RFABS fabsf
#define RPOW powf
#elif MGRAD_REAL_BITS == 64
typedef double real;
#define R(name) name##_f64
#define REAL_EPSILON DBL_EPSILON
#define REAL_DTYPE MGRAD_DTYPE_F64
#define RSQRT sqrt
#define REXP exp
#define RLOG log
#define RLOG1P log1p
#define RTANH tanh
#define RERF erf
#define RFABS fabs
#define RPOW pow
#else
#error "typed code must be compiled with MGRAD_REAL_BITS=32 or 64"
#endif

#endif /* MGRAD_REAL_H */
