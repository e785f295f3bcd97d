# Population kernels: advance P LSTM policies in lockstep, each member with its own weights.
# Included by _kernels.pyx.
#
# ``params`` is (P, N): row p is member p's flat parameter vector, in the layout of the template
# policy's ``flat_params``. A weight matrix of member p starts at ``&params[p, off]`` and is
# row-major, exactly as the template's named view sees it, so nothing is copied or transposed.
# Every member owns B consecutive rows of the activations: rows [p * B, (p + 1) * B).
#
#   x      (P*B, D)       this layer's input
#   h, c   (P*B, H)       state before the step
#   gates  (P*B, 4H)      scratch: the gate activations i, f, g, o
#   h_out, c_out (P*B, H) state after the step (may not alias h, c)


def population_lstm_step(const floating[:, ::1] params, Py_ssize_t off_w_ih,
                         Py_ssize_t off_w_hh, Py_ssize_t off_b_ih, Py_ssize_t off_b_hh,
                         Py_ssize_t off_peep, bint identity,
                         const floating[:, ::1] x, const floating[:, ::1] h,
                         const floating[:, ::1] c, floating[:, ::1] gates,
                         floating[:, ::1] h_out, floating[:, ::1] c_out):
    """For every member p: gates_p = b_ih_p + b_hh_p + x_p @ W_ih_p.T + h_p @ W_hh_p.T, then the cell.

    One call, one C loop over members, one GEMV (B = 1) or GEMM (B > 1) per matrix and member,
    on BLAS or, from 16 rows per member, on the micro-kernel as step() does; the cell update at
    the selected SIMD level. ``off_peep < 0`` means no peepholes.
    """
    cdef Py_ssize_t P = params.shape[0], N = params.shape[1]
    cdef Py_ssize_t PB = x.shape[0], D = x.shape[1], H = h.shape[1], G4 = 4 * H
    cdef Py_ssize_t B = PB // P if P > 0 else 0
    cdef Py_ssize_t p, b, r, j
    cdef const floating* w
    cdef const floating* peep_p
    cdef bint peephole = off_peep >= 0, micro = B >= _STEP_MICRO_MIN_B
    cdef floating* work = NULL
    cdef int rc = 0
    if P == 0 or B == 0 or H == 0:
        return
    if micro:   # transposed gates (4H, B) and input (max(D, H), B) of one member
        work = <floating*>malloc((G4 + max(D, H)) * B * sizeof(floating))
        if work == NULL:
            raise MemoryError()
    with nogil:
        for p in range(P):
            w = &params[p, 0]
            r = p * B
            if micro:
                # gT = (b_ih + b_hh)[:, None] + W_ih @ x_p.T + W_hh @ h_p.T;  gates_p = gT.T
                for j in range(G4):
                    for b in range(B):
                        work[j * B + b] = w[off_b_ih + j] + w[off_b_hh + j]
                if D > 0:
                    rc |= _gates_t(B, G4, D, &x[r, 0], w + off_w_ih, work + G4 * B, work)
                rc |= _gates_t(B, G4, H, &h[r, 0], w + off_w_hh, work + G4 * B, work)
                for b in range(B):
                    for j in range(G4):
                        gates[r + b, j] = work[j * B + b]
            else:
                # gates_p = b_ih_p + b_hh_p
                _add_bias_rows(&gates[r, 0], B, G4, w + off_b_ih, w + off_b_hh)
                # gates_p += x_p @ W_ih_p.T
                if D > 0:
                    matmul_wt(<int>B, <int>G4, <int>D, &x[r, 0], <int>D, w + off_w_ih, <int>D,
                              <floating>1.0, &gates[r, 0], <int>G4)
                # gates_p += h_p @ W_hh_p.T
                matmul_wt(<int>B, <int>G4, <int>H, &h[r, 0], <int>H, w + off_w_hh, <int>H,
                          <floating>1.0, &gates[r, 0], <int>G4)
            peep_p = (w + off_peep) if peephole else NULL
            rc |= _cell_rows(B, H, &gates[r, 0], G4, &c[r, 0], peep_p, &c_out[r, 0],
                             &h_out[r, 0], identity)
    free(work)
    if rc != 0:
        raise MemoryError()


def population_linear(const floating[:, ::1] params, Py_ssize_t off_w, Py_ssize_t off_b,
                      const floating[:, ::1] x, floating[:, ::1] out, int activation):
    """For every member p: out_p = act(x_p @ W_p.T + b_p); W_p (A, K) at ``off_w``, b_p at ``off_b``.

    ``off_b < 0`` means no bias. ``activation``: 0 none, 1 tanh, 2 relu.
    """
    cdef Py_ssize_t P = params.shape[0]
    cdef Py_ssize_t PB = x.shape[0], K = x.shape[1], A = out.shape[1]
    cdef Py_ssize_t B = PB // P if P > 0 else 0
    cdef Py_ssize_t p, r, i, j
    cdef const floating* w
    if P == 0 or B == 0 or A == 0:
        return
    with nogil:
        for p in range(P):
            w = &params[p, 0]
            r = p * B
            if off_b >= 0:
                for i in range(r, r + B):
                    memcpy(&out[i, 0], w + off_b, A * sizeof(floating))
            else:
                memset(&out[r, 0], 0, B * A * sizeof(floating))
            # out_p += x_p @ W_p.T
            if K > 0:
                matmul_wt(<int>B, <int>A, <int>K, &x[r, 0], <int>K, w + off_w, <int>K,
                          <floating>1.0, &out[r, 0], <int>A)
            if activation == 1:
                for i in range(r, r + B):
                    for j in range(A):
                        out[i, j] = tanh_(out[i, j])
            elif activation == 2:
                for i in range(r, r + B):
                    for j in range(A):
                        if out[i, j] < 0:
                            out[i, j] = 0
