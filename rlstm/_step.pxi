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
    cdef Py_ssize_t i
    cdef floating acc = 0
    for i in range(n):
        acc = acc + x[i] * 0     # NaN or inf anywhere makes acc NaN
    return acc == 0


cdef inline bint _finite(cnp.ndarray a, Py_ssize_t n, int typenum):
    if typenum == cnp.NPY_FLOAT32:
        return _all_finite(<float*>cnp.PyArray_DATA(a), n)
    return _all_finite(<double*>cnp.PyArray_DATA(a), n)


cdef void _step_layers(floating* base, const Py_ssize_t* offs, int L, int D, int H,
                       bint peephole, bint identity, const floating* x, const floating* h,
                       const floating* c, floating* gates, floating* hn, floating* cn,
                       Py_ssize_t B) noexcept nogil:
    # gates holds 2 * B * 4H elements: the gate rows, then the transposed-product scratch.
    """Advance every layer one step: gates = b_ih + b_hh + x W_ih^T + h W_hh^T; cell update."""
    cdef int layer, d_in
    cdef Py_ssize_t b, G4 = 4 * H, BH = B * H
    cdef const floating* inp = x
    cdef const floating* w_ih
    cdef const floating* w_hh
    cdef const floating* b_ih
    cdef const floating* b_hh
    cdef const floating* peep
    cdef floating* scratch = gates + B * G4
    for layer in range(L):
        d_in = D if layer == 0 else H
        w_ih = base + offs[5 * layer]
        w_hh = base + offs[5 * layer + 1]
        b_ih = base + offs[5 * layer + 2]
        b_hh = base + offs[5 * layer + 3]
        peep = base + offs[5 * layer + 4]
        _add_bias_rows(gates, B, G4, b_ih, b_hh)
        if d_in > 0:
            matmul_wt_add(<int>B, <int>G4, d_in, inp, d_in, w_ih, d_in, gates, <int>G4,
                          scratch)
        matmul_wt_add(<int>B, <int>G4, H, h + layer * BH, H, w_hh, H, gates, <int>G4, scratch)
        for b in range(B):
            _lstm_cell_fwd(gates + b * G4, c + layer * BH + b * H, cn + layer * BH + b * H,
                           hn + layer * BH + b * H, peep, peephole, identity, H)
        inp = hn + layer * BH


cdef class StepPlan:
    """Pointers into an LSTM's flat parameters for the fast ``step()`` path."""
    cdef object owner          # the LSTM; its flat_params keep the pointers valid
    cdef object flat           # the flat parameter array
    cdef Py_ssize_t* offs      # per layer: offsets of w_ih, w_hh, b_ih, b_hh, peep
    cdef int L, D, H, typenum
    cdef bint peephole, identity

    def __cinit__(self, owner, list offsets, int input_size, int hidden_size, bint peephole,
                  bint identity):
        cdef Py_ssize_t i
        self.owner = owner
        self.flat = owner.flat_params
        self.L = len(offsets) // 5
        self.D = input_size
        self.H = hidden_size
        self.peephole = peephole
        self.identity = identity
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
        gates = malloc(2 * B * 4 * H * cnp.PyArray_ITEMSIZE(hn))
        if gates == NULL:
            raise MemoryError()
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                _step_layers(<float*>cnp.PyArray_DATA(<cnp.ndarray>self.flat), self.offs, L,
                             self.D, H, self.peephole, self.identity,
                             <float*>cnp.PyArray_DATA(xa), <float*>cnp.PyArray_DATA(ha),
                             <float*>cnp.PyArray_DATA(ca), <float*>gates,
                             <float*>cnp.PyArray_DATA(hn), <float*>cnp.PyArray_DATA(cn), B)
            else:
                _step_layers(<double*>cnp.PyArray_DATA(<cnp.ndarray>self.flat), self.offs, L,
                             self.D, H, self.peephole, self.identity,
                             <double*>cnp.PyArray_DATA(xa), <double*>cnp.PyArray_DATA(ha),
                             <double*>cnp.PyArray_DATA(ca), <double*>gates,
                             <double*>cnp.PyArray_DATA(hn), <double*>cnp.PyArray_DATA(cn), B)
            memcpy(cnp.PyArray_DATA(y),
                   <char*>cnp.PyArray_DATA(hn) + (L - 1) * B * H * cnp.PyArray_ITEMSIZE(hn),
                   B * H * cnp.PyArray_ITEMSIZE(hn))
        free(gates)
        return y, (hn, cn)
