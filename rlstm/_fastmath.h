/* Branch-free exp, sigmoid and tanh that GCC and Clang auto-vectorise.
 *
 * libm's expf/tanhf are scalar calls, and the elementwise gate loops of an LSTM are dominated by
 * them once the GEMMs are fast. These are written so that a loop calling them compiles to SIMD
 * code (selects instead of branches, integer bit tricks instead of ldexp), without -ffast-math,
 * which would break the -inf guards of CTC and NaN detection elsewhere.
 *
 * Accuracy (measured by tests/test_fastmath.py against libm over dense grids):
 *   rl_expf / rl_exp: Cephes-style range reduction + polynomial, ~1-2 ulp.
 *   rl_tanhf / rl_tanh: expm1(2|x|) / (expm1(2|x|) + 2) with the sign of x, expm1 from the
 *   same range reduction as exp (2^n (p(r) + 1) - 1 = 2^n p(r) + (2^n - 1), no cancellation
 *   near 0): one polynomial and one division, where a two-branch form computes both.
 * Inputs are clamped before exponentiation, so large |x| gives 0, 1 or +-1, never NaN or inf.
 */
#ifndef RLSTM_FASTMATH_H
#define RLSTM_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float rl_expf(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447504f ? -87.3365447504f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - n ln 2 in two parts */
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float y = (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r
                 + 4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z
              + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    int32_t e = (bits - 0x4B400000 + 127) << 23; /* 2^n */
    float s;
    memcpy(&s, &e, sizeof s);
    return y * s;
}

/* x = n ln 2 + r with |r| <= 0.35: returns r; *t holds n + 1.5 * 2^52, whose low bits are n */
static inline double rl_exp_reduce(double x, double *t) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    *t = x * 1.4426950408889634074 + magic;
    double n = *t - magic;
    double r = x - n * 6.93147180369123816490e-01;
    return r - n * 1.90821492927058770002e-10;
}

/* q(r) with exp(r) = q(r) r + 1, |r| <= 0.35: the Taylor series to degree 13 (truncation
 * < 1e-17 relative); callers finish with one multiply-add, so exp and expm1 round alike */
static inline double rl_exp_q(double r) {
    double y = 1.0 / 6227020800.0;
    y = y * r + 1.0 / 479001600.0;
    y = y * r + 1.0 / 39916800.0;
    y = y * r + 1.0 / 3628800.0;
    y = y * r + 1.0 / 362880.0;
    y = y * r + 1.0 / 40320.0;
    y = y * r + 1.0 / 5040.0;
    y = y * r + 1.0 / 720.0;
    y = y * r + 1.0 / 120.0;
    y = y * r + 1.0 / 24.0;
    y = y * r + 1.0 / 6.0;
    y = y * r + 0.5;
    return y * r + 1.0;
}

/* 2^n from rl_exp_reduce's t */
static inline double rl_exp_scale(double t) {
    int64_t bits;
    memcpy(&bits, &t, sizeof bits);
    int64_t e = (bits - INT64_C(0x4338000000000000) + 1023) << 52;
    double s;
    memcpy(&s, &e, sizeof s);
    return s;
}

static inline double rl_exp(double x) {
    x = x > 709.0 ? 709.0 : x;
    x = x < -708.0 ? -708.0 : x;
    double t;
    double r = rl_exp_reduce(x, &t);
    double y = rl_exp_q(r) * r + 1.0;
    return y * rl_exp_scale(t);
}

/* expm1(x) for 0 <= x <= 20 (the range tanh needs), the reduction of rl_expf */
static inline float rl_expm1f_pos(float x) {
    x = x > 20.0f ? 20.0f : x;
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float p = (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r
                 + 4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    int32_t e = (bits - 0x4B400000 + 127) << 23; /* 2^n */
    float s;
    memcpy(&s, &e, sizeof s);
    return s * p + (s - 1.0f);
}

/* expm1(x) for 0 <= x <= 40, the reduction of rl_exp */
static inline double rl_expm1_pos(double x) {
    x = x > 40.0 ? 40.0 : x;
    double t;
    double r = rl_exp_reduce(x, &t);
    double p = rl_exp_q(r) * r;   /* exp(r) - 1 */
    double s = rl_exp_scale(t);
    return s * p + (s - 1.0);
}

static inline float rl_sigmoidf(float x) { return 1.0f / (1.0f + rl_expf(-x)); }
static inline double rl_sigmoid(double x) { return 1.0 / (1.0 + rl_exp(-x)); }

static inline float rl_tanhf(float x) {
    float ax = x < 0 ? -x : x;
    float em = rl_expm1f_pos(2.0f * ax);
    float th = em / (em + 2.0f);
    return x < 0 ? -th : th;
}

static inline double rl_tanh(double x) {
    double ax = x < 0 ? -x : x;
    double em = rl_expm1_pos(2.0 * ax);
    double th = em / (em + 2.0);
    return x < 0 ? -th : th;
}

#endif
