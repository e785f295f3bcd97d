/* The vector type of one SIMD level, for the kernel body (_rlk_body.h).
 *
 * The level is chosen by the including file: RL_LEVEL_AVX512 (64-byte vectors), RL_LEVEL_AVX2
 * (32), RL_LEVEL_SSE2 (16 bytes: the x86-64 baseline), RL_LEVEL_NEON (16 bytes on aarch64) or
 * RL_LEVEL_GENERIC (plain C). The code is written once with GCC/Clang vector extensions, so the compiler maps it to
 * whatever instructions the translation unit's -m flags allow; a compiler without them gets
 * scalar code (vectors of one element), which is still correct.
 */
#ifndef RLSTM_RLK_SIMD_H
#define RLSTM_RLK_SIMD_H

#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(RL_LEVEL_GENERIC)
#  define RL_INLINE static inline __attribute__((always_inline))
#  if defined(RL_LEVEL_AVX512)
#    define RL_VBYTES 64
#  elif defined(RL_LEVEL_AVX2)
#    define RL_VBYTES 32
#  else
#    define RL_VBYTES 16
#  endif
typedef float rl_vf __attribute__((vector_size(RL_VBYTES)));
typedef double rl_vd __attribute__((vector_size(RL_VBYTES)));
#  define RL_VLF (RL_VBYTES / 4)
#  define RL_VLD (RL_VBYTES / 8)
#  define RL_SCALAR 0
#else
/* the generic level: plain C, one element per "vector" */
#  if defined(__GNUC__) || defined(__clang__)
#    define RL_INLINE static inline __attribute__((always_inline))
#  else
#    define RL_INLINE static inline
#  endif
typedef float rl_vf;
typedef double rl_vd;
#  define RL_VLF 1
#  define RL_VLD 1
#  define RL_SCALAR 1
#endif

/* Unroll the next loop in full (its trip count is a compile-time constant at every call site):
 * register tiles whose row loop GCC would otherwise leave rolled, accumulators on the stack. */
#if defined(__clang__)
#  define RL_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#  define RL_UNROLL _Pragma("GCC unroll 32")
#else
#  define RL_UNROLL
#endif

/* Rows per register tile of the packed GEMM, chosen so that the MR x 4 accumulators plus the
 * four weight vectors fit the register file (32 vector registers with AVX-512, 16 below). */
#if defined(RL_LEVEL_AVX512)
#  define RL_MR 6
#elif defined(RL_LEVEL_AVX2)
#  define RL_MR 3
#elif defined(RL_LEVEL_GENERIC)
#  define RL_MR 4
#else
#  define RL_MR 2
#endif

#endif
