# The LSTM rollout path: one time step of a stacked LSTM in one call, with the least Python
# overhead the library can reach. Included by _kernels.pyx.
#
# A StepPlan is built once per layer object and holds raw pointers into the layer's
# flat_params (kept alive by a reference), so a step costs one Python call, a few checks on
# ndarray headers, three small allocations and the BLAS work. Anything unusual (lists, other
# dtypes, non-contiguous arrays, missing state) goes through the owner's validating Python path.

cimport numpy as cnp

cnp.import_array()


cdef inline bint _is_exact(object a, int typenum, int ndim):
    """True for a C-contiguous ndarray of the given type number and rank."""
    return (type(a) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef inline bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No NaN or inf in x[:n]: an OR over the exponent bits (all ones only for NaN and inf), which
    vectorises; a floating-point sum would be one long dependency chain."""
    cdef Py_ssize_t i
    cdef unsigned int bad32 = 0
    cdef unsigned long long bad64 = 0
    cdef const unsigned int* u32
    cdef const unsigned long long* u64
    if floating is float:
        u32 = <const unsigned int*>x
        for i in range(n):
            bad32 |= <unsigned int>((u32[i] & 0x7f800000u) == 0x7f800000u)
        return bad32 == 0
    else:
        u64 = <const unsigned long long*>x
        for i in range(n):
            bad64 |= <unsigned long long>((u64[i] & 0x7ff0000000000000ull)
                                          == 0x7ff0000000000000ull)
        return bad64 == 0


cdef inline bint _finite(cnp.ndarray a, Py_ssize_t n, int typenum):
    if typenum == cnp.NPY_FLOAT32:
        return _all_finite(<float*>cnp.PyArray_DATA(a), n)
    return _all_finite(<double*>cnp.PyArray_DATA(a), n)


# Batches of at least this many rows compute the gate products on the kernel library's
# micro-kernel (gates.T = W @ x.T: every weight read once, the batch along the vector);
# smaller ones on BLAS (a GEMV at B = 1).
cdef Py_ssize_t _STEP_MICRO_MIN_B = 16


def _set_step_micro_min_b(Py_ssize_t b):
    """For measurements and tests: the batch size from which step() uses the micro-kernel."""
    global _STEP_MICRO_MIN_B
    _STEP_MICRO_MIN_B = b


cdef int _step_layers(floating* base, const Py_ssize_t* offs, int L, int D, int H,
                      bint peephole, bint identity, const floating* x, const floating* h,
                      const floating* c, floating* work, floating* hn, floating* cn,
                      Py_ssize_t B, bint cell_rec=False,
                      const floating* zb=NULL) noexcept nogil:
    """Advance every layer one step: gates = b_ih + b_hh + x W_ih^T + h W_hh^T; cell update.

    ``zb`` (4H zeros) stands in for both biases of a layer built with bias=False; NULL: the
    biases are read at their offsets.

    work holds (2 * 4H + max(D, H)) * B elements: the gate rows, then the transposed gates (or
    BLAS's transposed-product scratch), then the transposed input. Returns 0, or -1 when the
    micro-kernel could not allocate."""
    cdef int layer, d_in, rc = 0
    cdef Py_ssize_t G4 = 4 * H, BH = B * H
    cdef const floating* inp = x
    cdef const floating* w_ih
    cdef const floating* w_hh
    cdef const floating* b_ih
    cdef const floating* b_hh
    cdef const floating* peep
    cdef floating* gates = work
    cdef floating* gT = work + B * G4
    cdef rl_step_layer sl
    cdef bint micro = B >= _STEP_MICRO_MIN_B and not cell_rec
    for layer in range(L):
        d_in = D if layer == 0 else H
        w_ih = base + offs[5 * layer]
        w_hh = base + offs[5 * layer + 1]
        if zb == NULL:
            b_ih = base + offs[5 * layer + 2]
            b_hh = base + offs[5 * layer + 3]
        else:
            b_ih = zb
            b_hh = zb
        peep = base + offs[5 * layer + 4]
        if micro:
            # gates.T = W_ih @ inp.T + W_hh @ h.T + (b_ih + b_hh), then the cell, in C
            sl.dbl, sl.identity, sl.B, sl.D, sl.H = floating is double, identity, B, d_in, H
            sl.x, sl.h, sl.c = inp, h + layer * BH, c + layer * BH
            sl.w_ih, sl.w_hh, sl.b_ih, sl.b_hh = w_ih, w_hh, b_ih, b_hh
            sl.peep = peep if peephole else NULL
            sl.h_out, sl.c_out, sl.work = hn + layer * BH, cn + layer * BH, work
            rc |= rl_lstm_step_layer(&sl)
        else:
            _add_bias_rows(gates, B, G4, b_ih, b_hh)
            if d_in > 0:
                matmul_wt_add(<int>B, <int>G4, d_in, inp, d_in, w_ih, d_in, gates, <int>G4, gT)
            if cell_rec:
                # variant="peephole_cell": w_hh is w_ch (3H, H); the gates i, f, o read c_{t-1}
                matmul_wt_add(<int>B, 2 * H, H, c + layer * BH, H, w_hh, H, gates, <int>G4, gT)
                matmul_wt_add(<int>B, H, H, c + layer * BH, H, w_hh + 2 * H * H, H,
                              gates + 3 * H, <int>G4, gT)
            else:
                matmul_wt_add(<int>B, <int>G4, H, h + layer * BH, H, w_hh, H, gates, <int>G4,
                              gT)
            rc |= _cell_rows(B, H, gates, G4, c + layer * BH, peep if peephole else NULL,
                             cn + layer * BH, hn + layer * BH, identity)
        inp = hn + layer * BH
    return rc


cdef class StepPlan:
    """Pointers into an LSTM's flat parameters for the fast ``step()`` path."""
    cdef object owner          # the LSTM; its flat_params keep the pointers valid
    cdef object flat           # the flat parameter array
    cdef Py_ssize_t* offs      # per layer: offsets of w_ih, w_hh, b_ih, b_hh, peep
    cdef int L, D, H, typenum
    cdef bint peephole, identity, cell_rec
    cdef object zeros          # bias=False: 4H zeros read as both biases (else None)
    cdef void* zb

    def __cinit__(self, owner, list offsets, int input_size, int hidden_size, bint peephole,
                  bint identity, bint cell_rec=False, zero_bias=None):
        cdef Py_ssize_t i
        self.owner = owner
        self.flat = owner.flat_params
        self.zeros = zero_bias
        self.zb = NULL
        if zero_bias is not None:
            if not (_is_exact(zero_bias, cnp.PyArray_TYPE(<cnp.ndarray>self.flat), 1)
                    and (<cnp.ndarray>zero_bias).shape[0] == 4 * hidden_size):
                raise ValueError("zero_bias must be a contiguous (4H,) array of the dtype")
            self.zb = cnp.PyArray_DATA(<cnp.ndarray>zero_bias)
        self.L = len(offsets) // 5
        self.D = input_size
        self.H = hidden_size
        self.peephole = peephole
        self.identity = identity
        self.cell_rec = cell_rec
        self.typenum = cnp.PyArray_TYPE(<cnp.ndarray>self.flat)
        self.offs = <Py_ssize_t*>malloc(max(1, len(offsets)) * sizeof(Py_ssize_t))
        if self.offs == NULL:
            raise MemoryError()
        for i in range(len(offsets)):
            self.offs[i] = offsets[i]

    def __dealloc__(self):
        free(self.offs)

    def step(self, x, state):
        """``h_t, (h, c) = plan.step(x_t, state)`` for the owning LSTM (see ``LSTM.step``)."""
        cdef cnp.ndarray xa, ha, ca, hn, cn, y
        cdef Py_ssize_t B
        cdef int L = self.L, H = self.H, nd3 = 3
        cdef cnp.npy_intp dims[3]
        cdef void* gates
        cdef int rc = 0
        # Fast checks on the array headers; anything else takes the validating Python path.
        if (_is_exact(x, self.typenum, 2) and (<cnp.ndarray>x).shape[1] == self.D
                and type(state) is tuple and len(<tuple>state) == 2
                and _is_exact((<tuple>state)[0], self.typenum, 3)
                and _is_exact((<tuple>state)[1], self.typenum, 3)):
            xa = <cnp.ndarray>x
            ha = <cnp.ndarray>(<tuple>state)[0]
            ca = <cnp.ndarray>(<tuple>state)[1]
            B = xa.shape[0]
            if not (ha.shape[0] == L and ha.shape[1] == B and ha.shape[2] == H and
                    ca.shape[0] == L and ca.shape[1] == B and ca.shape[2] == H):
                xa, ha, ca = self.owner._step_inputs(x, state)
        else:
            xa, ha, ca = self.owner._step_inputs(x, state)
        B = xa.shape[0]
        if not (_finite(xa, B * self.D, self.typenum)
                and _finite(ha, L * B * H, self.typenum)
                and _finite(ca, L * B * H, self.typenum)):
            raise ValueError("x_t or the state (h, c) contains NaN or inf; clean the input "
                             "(np.nan_to_num) or reset the state")
        dims[0] = L
        dims[1] = B
        dims[2] = H
        hn = cnp.PyArray_EMPTY(nd3, dims, self.typenum, 0)
        cn = cnp.PyArray_EMPTY(nd3, dims, self.typenum, 0)
        y = cnp.PyArray_EMPTY(2, &dims[1], self.typenum, 0)
        if B == 0:
            return y, (hn, cn)
        gates = malloc((8 * H + max(self.D, H)) * B * cnp.PyArray_ITEMSIZE(hn))
        if gates == NULL:
            raise MemoryError()
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                rc = _step_layers(<float*>cnp.PyArray_DATA(<cnp.ndarray>self.flat),
                                  self.offs, L, self.D, H, self.peephole, self.identity,
                                  <float*>cnp.PyArray_DATA(xa), <float*>cnp.PyArray_DATA(ha),
                                  <float*>cnp.PyArray_DATA(ca), <float*>gates,
                                  <float*>cnp.PyArray_DATA(hn), <float*>cnp.PyArray_DATA(cn),
                                  B, self.cell_rec, <float*>self.zb)
            else:
                rc = _step_layers(<double*>cnp.PyArray_DATA(<cnp.ndarray>self.flat),
                                  self.offs, L, self.D, H, self.peephole, self.identity,
                                  <double*>cnp.PyArray_DATA(xa), <double*>cnp.PyArray_DATA(ha),
                                  <double*>cnp.PyArray_DATA(ca), <double*>gates,
                                  <double*>cnp.PyArray_DATA(hn), <double*>cnp.PyArray_DATA(cn),
                                  B, self.cell_rec, <double*>self.zb)
            memcpy(cnp.PyArray_DATA(y),
                   <char*>cnp.PyArray_DATA(hn) + (L - 1) * B * H * cnp.PyArray_ITEMSIZE(hn),
                   B * H * cnp.PyArray_ITEMSIZE(hn))
        free(gates)
        if rc != 0:
            raise MemoryError()
        return y, (hn, cn)
