/* The LSTM cell's backward loop for one batch row, in C so that the pointers can be declared
 * `restrict`: with eight pointers into different arrays, GCC will not version the Cython loop
 * for aliasing and leaves it scalar; with `restrict` it vectorises (tanh included, see
 * _fastmath.h).
 *
 * In: a = [i f g o] activations, c = c_t, cp = c_{t-1}, dy = gradient on h_t from above,
 * dh / dc = gradients on h_t / c_t from step t+1, peep = [p_i p_f p_o] (zeros for the vanilla
 * LSTM). Out: dg = gradient on the pre-activations [i f g o]; dc = gradient on c_{t-1}.
 * identity: h = o * c instead of o * tanh(c).
 */
#ifndef RLSTM_CELLS_H
#define RLSTM_CELLS_H

#include "_fastmath.h"

#define RL_DEFINE_LSTM_CELL_BWD(NAME, T, TANH)                                                 \
    static inline void NAME(const T *restrict a, const T *restrict c, const T *restrict cp,    \
                            const T *restrict dy, const T *restrict dh, T *restrict dc,        \
                            T *restrict dg, const T *restrict peep, int identity, long H) {    \
        const T one = 1;                                                                       \
        long j;                                                                                \
        if (identity) {                                                                        \
            for (j = 0; j < H; j++) {                                                          \
                T ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];              \
                T act = c[j];                                                                  \
                T dhj = dy[j] + dh[j];                                                         \
                T dog = dhj * act * og * (one - og);                                           \
                T dcj = dc[j] + dhj * og + dog * peep[2 * H + j];                              \
                T dig = dcj * gg * ig * (one - ig);                                            \
                T dfg = dcj * cp[j] * fg * (one - fg);                                         \
                dg[j] = dig;                                                                   \
                dg[H + j] = dfg;                                                               \
                dg[2 * H + j] = dcj * ig * (one - gg * gg);                                    \
                dg[3 * H + j] = dog;                                                           \
                dc[j] = dcj * fg + dig * peep[j] + dfg * peep[H + j];                          \
            }                                                                                  \
        } else {                                                                               \
            for (j = 0; j < H; j++) {                                                          \
                T ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];              \
                T act = TANH(c[j]);                                                            \
                T dhj = dy[j] + dh[j];                                                         \
                T dog = dhj * act * og * (one - og);                                           \
                T dcj = dc[j] + dhj * og * (one - act * act) + dog * peep[2 * H + j];          \
                T dig = dcj * gg * ig * (one - ig);                                            \
                T dfg = dcj * cp[j] * fg * (one - fg);                                         \
                dg[j] = dig;                                                                   \
                dg[H + j] = dfg;                                                               \
                dg[2 * H + j] = dcj * ig * (one - gg * gg);                                    \
                dg[3 * H + j] = dog;                                                           \
                dc[j] = dcj * fg + dig * peep[j] + dfg * peep[H + j];                          \
            }                                                                                  \
        }                                                                                      \
    }

RL_DEFINE_LSTM_CELL_BWD(rl_lstm_cell_bwd_f, float, rl_tanhf)
RL_DEFINE_LSTM_CELL_BWD(rl_lstm_cell_bwd_d, double, rl_tanh)

#endif
