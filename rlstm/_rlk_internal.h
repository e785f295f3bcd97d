/* What the per-SIMD-level translation units (_rlk_<level>.c) and the dispatcher share. Not part
 * of the interface that Cython sees (that is _rlk.h). */
#ifndef RLSTM_RLK_INTERNAL_H
#define RLSTM_RLK_INTERNAL_H

#include "_rlk.h"

/* A barrier for the threads of one sweep (see _rlk_dispatch.c). */
typedef struct rl_barrier rl_barrier;
void rl_barrier_wait(rl_barrier *b);

/* One SIMD level's kernels. `*_work` gives the bytes of work memory a call needs for `nth`
 * threads (packed weights, per-thread scratch); `*_prepare` packs the weights into it (once per
 * call, by one thread); `*_run` is the sweep of thread `tid` of `nth`. */
typedef struct {
    const char *name;
    size_t (*fwd_work)(const rl_lstm_seq *a, int nth);
    void (*fwd_prepare)(const rl_lstm_seq *a, void *work);
    void (*fwd_run)(const rl_lstm_seq *a, void *work, int tid, int nth, rl_barrier *bar);
    size_t (*bwd_work)(const rl_lstm_seq *a, int nth);
    void (*bwd_prepare)(const rl_lstm_seq *a, void *work);
    void (*bwd_run)(const rl_lstm_seq *a, void *work, int tid, int nth, rl_barrier *bar);
    int (*gemm)(const rl_gemm *g);
    int (*cell_rows)(const rl_cell_rows *a);
    int (*conv_fwd)(const rl_conv *a);
    int (*step_layer)(const rl_step_layer *a);
    int (*conv_bwd)(const rl_conv *a);
    int (*gru_fwd_rows)(const rl_gru_rows *a);
    int (*gru_bwd_rows)(const rl_gru_rows *a);
    int (*cell_bwd_rows)(const rl_cell_bwd_rows *a);
    long (*units_per_panel)(int dbl, int backward);   /* the split granularity of the sweep */
} rl_isa_table;

#define RL_DECLARE_TABLE(level) extern const rl_isa_table rl_table_##level;
RL_DECLARE_TABLE(avx512)
RL_DECLARE_TABLE(avx2)
RL_DECLARE_TABLE(sse2)
RL_DECLARE_TABLE(neon)
RL_DECLARE_TABLE(generic)

#endif
