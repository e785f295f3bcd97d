/* rlstm's compiled kernel library ("rlk"): the hot loops of the LSTM layer in C, compiled once
 * per SIMD level and picked at import time (see _rlk_dispatch.c).
 *
 * Layering: the Cython module (_kernels.pyx) validates nothing either, but it owns the
 * memoryviews, the BLAS calls for the large merged GEMMs and the Python errors. This header is
 * the whole interface between the two: one argument struct per kernel (so a call site names
 * every field instead of passing 25 positional arguments) and a few entry points that dispatch
 * to the selected SIMD level.
 *
 * Arrays are row-major and dense unless a leading dimension (ld*) says otherwise. Pointers are
 * `void *` so that one struct serves float32 and float64; `dbl` says which.
 */
#ifndef RLSTM_RLK_H
#define RLSTM_RLK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One LSTM layer and direction over a whole sequence: the recurrent sweep.
 *
 * Forward: on entry `gates` holds x @ W_ih.T (the hoisted input projection, no bias). Per step
 * t (in processing order: T-1..0 when `reverse`), gates[t] += h_{t-1} @ W_hh.T + bias and the
 * cell update turns them into the activations i, f, g, o, writes c_t to `cs`, h_t to `y` and
 * h_{t-1} as the step saw it (zero after a reset) to `hprev`.
 *
 * Backward: on entry `dh`, `dc` hold the gradient on the final (h, c); on exit, on the initial
 * one. Per step: the cell backward gives dgates[t] (and adds its column sums into `dbias`, the
 * peephole gradients into `dpeep`), then dh = dgates[t] @ W_hh. The merged weight-gradient and
 * input-gradient GEMMs are the caller's (BLAS). */
typedef struct {
    int dbl;              /* 0: float32, 1: float64 */
    long T, B, H;         /* steps, batch rows, hidden units (4H gate columns) */
    int reverse;          /* process t = T-1 .. 0 */
    int peephole;         /* diagonal peepholes p_i, p_f, p_o in `peep` (3H) */
    int identity;         /* h = o * c instead of o * tanh(c) */
    const unsigned char *resets;   /* (T, B): state zeroed before step t where set; or NULL */
    const void *w_hh;     /* (4H, H) recurrent weights, as the layer holds them */
    const void *bias;     /* forward: (4H,) b_ih + b_hh */
    const void *peep;     /* (3H,) or NULL */
    const void *h0, *c0;  /* (B, H) initial state */
    void *gates;          /* (T*B, 4H) forward: in x-projection, out activations */
    void *cs;             /* (T*B, H) c_t */
    void *hprev;          /* (T*B, H) h_{t-1} per step */
    void *y;              /* h_t at y[row * ldy + yoff] */
    long ldy, yoff;
    void *h_n, *c_n;      /* (B, H) final state (forward) */
    /* backward only */
    const void *dy;       /* gradient on h_t at dy[row * lddy + dyoff] */
    long lddy, dyoff;
    void *dgates;         /* (T*B, 4H) out */
    void *dh, *dc;        /* (B, H) in/out */
    void *dbias;          /* (4H,) += column sums of dgates */
    void *dpeep;          /* (3H,) += peephole gradients, or NULL */
    int nthreads;         /* threads for the sweep (1 = the caller only) */
} rl_lstm_seq;

/* C[M, N] (+)= A[M, K] @ B[K, N], row-major with leading dimensions: the register-blocked
 * micro-kernel of the sweeps, for the small GEMMs of the image path (few output channels). */
typedef struct {
    int dbl;
    long M, N, K;
    const void *a; long lda;
    const void *b; long ldb;
    void *c; long ldc;
    int accumulate;       /* 1: C += ..., 0: C = ... */
} rl_gemm;

/* The LSTM cell update of B rows (the rollout step, the population kernel): gates[b] (row
 * ldg apart, pre-activations i f g o, bias already added) become the activations; c_t and h_t
 * are written to c_out and h_out (rows H apart). cprev (rows H apart) and peep (3H) may be
 * NULL (zeros). */
typedef struct {
    int dbl;
    long B, H, ldg;
    void *gates;
    const void *cprev, *peep;
    long peep_ld;         /* rows of peepholes this far apart (ConvLSTM's per pixel); 0: shared */
    void *c_out, *h_out;
    int identity;
} rl_cell_rows;

/* The LSTM cell backward of B rows (ConvLSTM's pixel rows): from the activations a (rows ldg
 * apart), c_t, c_{t-1} (NULL: zeros), dy, and dh, dc (gradients from step t+1; dc is
 * overwritten by the gradient on c_{t-1}), the pre-activation gradients dg (rows ldg apart);
 * dbias (4H) += their column sums, dpeep (rows dpeep_ld apart, 0: shared; NULL: none) += the
 * peephole gradients. Rows of c, cprev, dy, dh, dc are H apart. */
typedef struct {
    int dbl, identity;
    long B, H, ldg;
    const void *a, *c, *cprev, *dy, *peep;
    long peep_ld;
    void *dh, *dc, *dg, *dbias, *dpeep;
    long dpeep_ld;
} rl_cell_bwd_rows;

/* The GRU cell (PyTorch's form, gate order r, z, n) over B rows, each array's rows ld* apart.
 * Forward: g holds the input part of the pre-activations (+ b_ih) and becomes the activations
 * r, z, n; gh is h_{t-1} @ W_hh.T + b_hh; ghn gets gh's n part; h_out = (1 - z) n + z h_{t-1}.
 * Backward: from the activations, ghn, h_{t-1}, dy and dh (gradient on h_t from step t+1):
 * dgx and dgh (gradients on the input and recurrent pre-activations, rows lddg apart) and dh
 * overwritten by z * (dy + dh), the direct part of the gradient on h_{t-1}. */
typedef struct {
    int dbl;
    long B, H;
    void *g; long ldg;
    const void *gh; long ldgh;
    const void *hp; long ldhp;
    void *ghn; long ldghn;
    void *h_out; long ldh;
    const void *dy; long lddy;
    void *dh; long lddh;
    void *dgx, *dgh; long lddg;
} rl_gru_rows;

/* One LSTM layer's step for a batch on the micro-kernel (the rollout path with 16+ rows):
 * gates.T = W_ih @ x.T + W_hh @ h.T + (b_ih + b_hh) with the weights read in place (every
 * weight once, the batch along the vector), then the cell. x (B, D), h, c, h_out, c_out
 * (B, H); work holds (8H + max(D, H)) * B elements. */
typedef struct {
    int dbl, identity;
    long B, D, H;
    const void *x, *h, *c;
    const void *w_ih, *w_hh, *b_ih, *b_hh, *peep;   /* peep (3H) or NULL */
    void *h_out, *c_out, *work;
} rl_step_layer;

/* Conv2d (no padding, square kernel k, stride) as blocked im2col + GEMM over channel-last
 * batches: rows are output positions r = (n * Ho + i) * Wo + j, im2col columns (a, b, c).
 * Forward: y (R, O) = act(im2col(x) @ w.T + bias). Backward: dy (R, O) is overwritten by the
 * gradient on the pre-activation, dw (O, K) and db (O,) are added to, dx (N, H, W, C)
 * channel-last is overwritten when not NULL. */
typedef struct {
    int dbl;
    long N, H, W, C, k, stride, O;
    int channel_last;     /* x is (N, H, W, C); else (N, C, H, W) */
    int relu;
    const void *x, *w, *bias;
    void *y;
    void *dy, *dw, *db, *dx;
} rl_conv;

/* Select the SIMD level. `name` is NULL or "auto" for the best one this CPU runs, else one of
 * rl_simd_names(). Returns 0 on success, -1 for an unknown name, -2 for a level this CPU (or
 * this build) cannot run; the selection is unchanged on error. */
int rl_simd_select(const char *name);
const char *rl_simd_current(void);
/* The levels compiled into this build, best first, separated by commas (e.g.
 * "avx512,avx2,sse2,generic"), and whether this CPU runs one of them. */
const char *rl_simd_compiled(void);
int rl_simd_supported(const char *name);

/* Threads the sweeps may use (the team is started per call and ends with it). */
void rlstm_set_num_threads(int n);
int rlstm_get_num_threads(void);
long rl_team_sweeps(void);   /* how many sweeps ran on more than one thread so far */

/* The kernels. Return 0, or -1 when a work buffer could not be allocated. */
int rl_lstm_forward(const rl_lstm_seq *a);
int rl_lstm_backward(const rl_lstm_seq *a);
int rl_gemm_run(const rl_gemm *g);
int rl_lstm_cell_rows(const rl_cell_rows *a);
int rl_lstm_cell_bwd_rows(const rl_cell_bwd_rows *a);
int rl_conv_forward(const rl_conv *a);
int rl_lstm_step_layer(const rl_step_layer *a);
int rl_gru_cell_fwd_rows(const rl_gru_rows *a);
int rl_gru_cell_bwd_rows(const rl_gru_rows *a);
int rl_conv_backward(const rl_conv *a);

#ifdef __cplusplus
}
#endif
#endif
