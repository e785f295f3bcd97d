/* One SIMD level's kernel table. Included by _rlk_<level>.c after it defines RL_LEVEL_<LEVEL>
 * and RL_TABLE (the table's name); that file is compiled with the level's -m flags. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "_fastmath.h"
#include "_rlk_internal.h"
#include "_rlk_simd.h"

#ifndef __cplusplus
#  if !defined(__GNUC__) && !defined(__clang__) && !defined(restrict)
#    define restrict
#  endif
#endif

#define RL_CAT_(a, b) a##b
#define RL_CAT(a, b) RL_CAT_(a, b)

/* float32 */
#define RLT float
#define RLV rl_vf
#define RLVL RL_VLF
#define FN(name) RL_CAT(name, _f)
#define RL_TANH rl_tanhf
#define RL_SIGMOID rl_sigmoidf
#include "_rlk_body.h"
#undef RLT
#undef RLV
#undef RLVL
#undef FN
#undef RL_TANH
#undef RL_SIGMOID

/* float64 */
#define RLT double
#define RLV rl_vd
#define RLVL RL_VLD
#define FN(name) RL_CAT(name, _d)
#define RL_TANH rl_tanh
#define RL_SIGMOID rl_sigmoid
#include "_rlk_body.h"
#undef RLT
#undef RLV
#undef RLVL
#undef FN
#undef RL_TANH
#undef RL_SIGMOID

static size_t fwd_work(const rl_lstm_seq *a, int nth)
{
    return a->dbl ? fwd_work_d(a, nth) : fwd_work_f(a, nth);
}
static void fwd_prepare(const rl_lstm_seq *a, void *w)
{
    if (a->dbl) fwd_prepare_d(a, w); else fwd_prepare_f(a, w);
}
static void fwd_run(const rl_lstm_seq *a, void *w, int tid, int nth, rl_barrier *bar)
{
    if (a->dbl) fwd_run_d(a, w, tid, nth, bar); else fwd_run_f(a, w, tid, nth, bar);
}
static size_t bwd_work(const rl_lstm_seq *a, int nth)
{
    return a->dbl ? bwd_work_d(a, nth) : bwd_work_f(a, nth);
}
static void bwd_prepare(const rl_lstm_seq *a, void *w)
{
    if (a->dbl) bwd_prepare_d(a, w); else bwd_prepare_f(a, w);
}
static void bwd_run(const rl_lstm_seq *a, void *w, int tid, int nth, rl_barrier *bar)
{
    if (a->dbl) bwd_run_d(a, w, tid, nth, bar); else bwd_run_f(a, w, tid, nth, bar);
}
static int gemm(const rl_gemm *g)
{
    return g->dbl ? gemm_d(g) : gemm_f(g);
}
static int cell_rows(const rl_cell_rows *a)
{
    return a->dbl ? cell_rows_d(a) : cell_rows_f(a);
}
static int conv_fwd(const rl_conv *a)
{
    return a->dbl ? conv_fwd_d(a) : conv_fwd_f(a);
}
static int conv_bwd(const rl_conv *a)
{
    return a->dbl ? conv_bwd_d(a) : conv_bwd_f(a);
}
static int step_layer(const rl_step_layer *a)
{
    return a->dbl ? step_layer_d(a) : step_layer_f(a);
}
static int gru_fwd_rows(const rl_gru_rows *a)
{
    return a->dbl ? gru_fwd_rows_d(a) : gru_fwd_rows_f(a);
}
static int gru_bwd_rows(const rl_gru_rows *a)
{
    return a->dbl ? gru_bwd_rows_d(a) : gru_bwd_rows_f(a);
}
static int cell_bwd_rows(const rl_cell_bwd_rows *a)
{
    return a->dbl ? cell_bwd_rows_d(a) : cell_bwd_rows_f(a);
}
static long units_per_panel(int dbl, int backward)
{
    long vl = dbl ? RL_VLD : RL_VLF;
    return backward ? 4 * vl : vl;
}

const rl_isa_table RL_TABLE = {
    RL_LEVEL_NAME, fwd_work, fwd_prepare, fwd_run, bwd_work, bwd_prepare, bwd_run,
    gemm, cell_rows, conv_fwd, step_layer, conv_bwd, gru_fwd_rows, gru_bwd_rows,
    cell_bwd_rows, units_per_panel,
};
