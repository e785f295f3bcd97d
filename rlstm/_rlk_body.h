/* The kernel body for one element type at one SIMD level. Included by _rlk_level.h twice, with
 * RLT (float or double), RLV (its vector type), RLVL (elements per vector) and FN(name) (the
 * name with the type's suffix) defined.
 *
 * The recurrent product of an LSTM step is a GEMM with few rows (M = B, the batch) whose weights
 * do not change within a sequence. BLAS re-packs the weights at every call; here they are packed
 * once per call into the panel layout of a register-blocked micro-kernel:
 *
 *   forward  panel p = hidden units [p*VL, p*VL + VL): for every k, the 4 gates' VL weights
 *            (i, f, g, o), so one register tile holds all four gates of VL units and the cell
 *            update runs right after the panel, on data still in L1 ("panel epilogue");
 *   backward panel q = hidden units [q*4VL, q*4VL + 4VL) of dh = dgates @ W_hh (K = 4H), and the
 *            epilogue is the cell backward of the previous step for those units.
 *
 * Threads split the panels (each keeps its slice of the weights in its own L2) and meet at a
 * barrier once per step.
 */

RL_INLINE RLV FN(ld)(const RLT *p) { RLV v; memcpy(&v, p, sizeof v); return v; }
RL_INLINE void FN(st)(RLT *p, RLV v) { memcpy(p, &v, sizeof v); }
#if RL_SCALAR
RL_INLINE RLV FN(splat)(RLT s) { return s; }
#else
/* s - 0 is s for every s (-0 and NaN included), so this folds to one broadcast */
RL_INLINE RLV FN(splat)(RLT s) { return s - (RLV){0}; }
#endif

/* K block of the packed weights that stays in L1 across the row tiles (about 24 KiB). */
#ifndef RL_KC_BYTES
#define RL_KC_BYTES 24576
#endif
#define FN_KC ((long)(RL_KC_BYTES / (4 * RLVL * sizeof(RLT))))

/* The register tile: C[mr rows x 4 vectors] (+)= A[mr x kc] @ Bp[kc x 4VL], row k of Bp at
 * bp + k * ldb (ldb = 4VL for packed weights). Row m of C is at c + m * ldc and its vector v at
 * + v * cs; init = 0 starts from zero instead of C. */
RL_INLINE void FN(tile)(const int mr, long kc, const RLT *a, long lda, const RLT *bp, long ldb,
                        RLT *c, long ldc, long cs, int init, const RLT *pf)
{
    RLV acc[RL_MR][4];
    int m, v;
    long k;
    for (m = 0; m < mr; m++)
        for (v = 0; v < 4; v++)
            acc[m][v] = init ? FN(ld)(c + m * ldc + v * cs) : (RLV){0};
    for (k = 0; k < kc; k++) {
        const RLT *b = bp + k * ldb;
#if defined(__GNUC__) || defined(__clang__)
        if (pf) {   /* the next K block of the weights, while this one is computed */
            const char *q = (const char *)(pf + k * ldb);
            __builtin_prefetch(q);
            __builtin_prefetch(q + 64);
            __builtin_prefetch(q + 128);
            __builtin_prefetch(q + 192);
        }
#endif
        RLV b0 = FN(ld)(b), b1 = FN(ld)(b + RLVL), b2 = FN(ld)(b + 2 * RLVL),
            b3 = FN(ld)(b + 3 * RLVL);
        for (m = 0; m < mr; m++) {
            RLV am = FN(splat)(a[m * lda + k]);
            acc[m][0] += am * b0;
            acc[m][1] += am * b1;
            acc[m][2] += am * b2;
            acc[m][3] += am * b3;
        }
    }
    for (m = 0; m < mr; m++)
        for (v = 0; v < 4; v++)
            FN(st)(c + m * ldc + v * cs, acc[m][v]);
}

/* mr in [1, RL_MR]: one compiled tile per height, so the accumulators stay in registers */
static void FN(tile_any)(int mr, long kc, const RLT *a, long lda, const RLT *bp, long ldb,
                         RLT *c, long ldc, long cs, int init, const RLT *pf)
{
    switch (mr) {
#if RL_MR >= 6
    case 6: FN(tile)(6, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
#endif
#if RL_MR >= 5
    case 5: FN(tile)(5, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
#endif
#if RL_MR >= 4
    case 4: FN(tile)(4, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
#endif
#if RL_MR >= 3
    case 3: FN(tile)(3, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
#endif
    case 2: FN(tile)(2, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
    default: FN(tile)(1, kc, a, lda, bp, ldb, c, ldc, cs, init, pf); break;
    }
}

/* Narrow tiles for panels of nv = 1 or 2 vectors (a GEMM with few output columns, such as the
 * 16 or 32 channels of a conv layer, or the B = 16 columns of a transposed step): more rows per
 * tile keep the register file as full. Each row reads A at its own offset, one general register
 * per row: past 12 rows GCC spills those offsets and the tile slows down (step B=16 H=256:
 * 24 rows 91 us, 12 rows 82 us). */
#define FN_NMR (4 * RL_MR < 12 ? 4 * RL_MR : 12)

RL_INLINE void FN(tile_narrow)(const int mr, const int nv, long kc, const RLT *a, long lda,
                               const RLT *bp, long ldb, RLT *c, long ldc, long cs, int init)
{
    RLV acc[FN_NMR][2];
    int m, v;
    long k;
    /* unrolled in full, the accumulators live in registers (left to itself, GCC keeps the row
     * loop of the larger tiles rolled with acc on the stack: a load and a store per FMA) */
    RL_UNROLL
    for (m = 0; m < mr; m++)
        for (v = 0; v < nv; v++)
            acc[m][v] = init ? FN(ld)(c + m * ldc + v * cs) : (RLV){0};
    for (k = 0; k < kc; k++) {
        const RLT *b = bp + k * ldb;
        RLV b0 = FN(ld)(b), b1 = nv > 1 ? FN(ld)(b + RLVL) : b0;
        RL_UNROLL
        for (m = 0; m < mr; m++) {
            RLV am = FN(splat)(a[m * lda + k]);
            acc[m][0] += am * b0;
            if (nv > 1)
                acc[m][1] += am * b1;
        }
    }
    RL_UNROLL
    for (m = 0; m < mr; m++)
        for (v = 0; v < nv; v++)
            FN(st)(c + m * ldc + v * cs, acc[m][v]);
}

#define FN_NCASE(n)                                                                            \
    case n:                                                                                    \
        if (nv == 1)                                                                           \
            FN(tile_narrow)(n, 1, kc, a, lda, bp, ldb, c, ldc, cs, init);                      \
        else                                                                                   \
            FN(tile_narrow)(n, 2, kc, a, lda, bp, ldb, c, ldc, cs, init);                      \
        break;

/* mr in [1, FN_NMR] for nv = 1, [1, min(FN_NMR, 2 RL_MR)] for nv = 2 */
static void FN(tile_narrow_any)(int mr, int nv, long kc, const RLT *a, long lda,
                                const RLT *bp, long ldb, RLT *c, long ldc, long cs, int init)
{
    switch (mr) {
#if FN_NMR >= 12
    FN_NCASE(12) FN_NCASE(11) FN_NCASE(10) FN_NCASE(9)
#endif
    FN_NCASE(8) FN_NCASE(7) FN_NCASE(6) FN_NCASE(5) FN_NCASE(4) FN_NCASE(3) FN_NCASE(2)
    default:
        FN(tile_narrow)(1, nv, kc, a, lda, bp, ldb, c, ldc, cs, init);
        break;
    }
}
#undef FN_NCASE

/* C[M x nv vectors] (+)= A[M x K] @ B[K x nv VL] (nv = 1 or 2; B rows ldb apart). */
static void FN(panel_narrow)(long M, long K, int nv, const RLT *a, long lda, const RLT *bp,
                             long ldb, RLT *c, long ldc, int init)
{
    const int mrmax = nv == 1 || 2 * RL_MR > FN_NMR ? FN_NMR : 2 * RL_MR;
    const long ntiles = (M + mrmax - 1) / mrmax, base = M / ntiles, extra = M % ntiles;
    const long kcmax = RL_KC_BYTES / (nv * RLVL * (long)sizeof(RLT)) * 2;
    long kb, m, i;
    int mr;
    for (kb = 0; kb < K; kb += kcmax) {
        long kc = K - kb < kcmax ? K - kb : kcmax;
        for (i = 0, m = 0; i < ntiles; i++, m += mr) {
            mr = (int)(base + (i < extra));
            FN(tile_narrow_any)(mr, nv, kc, a + m * lda + kb, lda, bp + kb * ldb, ldb,
                                c + m * ldc, ldc, RLVL, init || kb > 0);
        }
    }
}

/* C[M x 4 vectors] (+)= A[M x K] @ Bp[K x 4VL] (one panel, all rows), K in L1-sized blocks.
 * Row k of Bp is at bp + k * ldb. */
static void FN(panel_ld)(long M, long K, const RLT *a, long lda, const RLT *bp, long ldb,
                         RLT *c, long ldc, long cs, int init)
{
    /* row tiles of nearly equal height (32 rows = 6+6+5+5+5+5, not 6*5+2) */
    const long ntiles = (M + RL_MR - 1) / RL_MR, base = M / ntiles, extra = M % ntiles;
    long kb, m, i;
    int mr;
    for (kb = 0; kb < K; kb += FN_KC) {
        long kc = K - kb < FN_KC ? K - kb : FN_KC;
        for (i = 0, m = 0; i < ntiles; i++, m += mr) {
            mr = (int)(base + (i < extra));
            /* the first row tile of a K block also prefetches the next block (weights that
             * do not fit the caches stream from memory once per step) */
            FN(tile_any)(mr, kc, a + m * lda + kb, lda, bp + kb * ldb, ldb, c + m * ldc, ldc,
                         cs, init || kb > 0,
                         (i == 0 && kb + FN_KC < K) ? bp + (kb + FN_KC) * ldb
                                                      : NULL);
        }
    }
}

/* The same for packed weights (rows 4VL apart). */
static void FN(panel)(long M, long K, const RLT *a, long lda, const RLT *bp, RLT *c, long ldc,
                      long cs, int init)
{
    FN(panel_ld)(M, K, a, lda, bp, 4 * RLVL, c, ldc, cs, init);
}

/* The same for a panel whose vector v has only nv[v] valid columns (the last panel when H is
 * not a multiple of the panel width): computed in `tmp` (M x 4VL), valid columns copied back. */
static void FN(panel_part)(long M, long K, const RLT *a, long lda, const RLT *bp, RLT *c,
                           long ldc, long cs, const long *nv, int init, RLT *tmp)
{
    long m, v, u;
    for (m = 0; m < M; m++)
        for (v = 0; v < 4; v++)
            for (u = 0; u < RLVL; u++)
                tmp[m * 4 * RLVL + v * RLVL + u] =
                    (init && u < nv[v]) ? c[m * ldc + v * cs + u] : (RLT)0;
    FN(panel)(M, K, a, lda, bp, tmp, 4 * RLVL, RLVL, 1);
    for (m = 0; m < M; m++)
        for (v = 0; v < 4; v++)
            for (u = 0; u < nv[v]; u++)
                c[m * ldc + v * cs + u] = tmp[m * 4 * RLVL + v * RLVL + u];
}

/* C[M x N] (+)= A[M x K] @ B[K x N], all row-major (B rows ldb apart): the small GEMMs of the
 * image path, whose N (output channels, or k*k*C) is too narrow for BLAS to run well. Panels
 * of 4VL columns of B are read in place; a last, narrower one is copied zero-padded. */
static int FN(gemm)(const rl_gemm *g)
{
    const long M = g->M, N = g->N, K = g->K, W = 4 * RLVL;
    const RLT *a = (const RLT *)g->a, *b = (const RLT *)g->b;
    RLT *c = (RLT *)g->c;
    long q;
    int nv = 1;
    if (M <= 0 || N <= 0)
        return 0;
    if (K <= 0) {
        if (!g->accumulate)
            for (q = 0; q < M; q++)
                memset(c + q * g->ldc, 0, N * sizeof(RLT));
        return 0;
    }
    for (q = 0; q + W <= N; q += W)
        FN(panel_ld)(M, K, a, g->lda, b + q, g->ldb, c + q, g->ldc, RLVL, g->accumulate);
    for (; q + RLVL <= N; q += nv * RLVL) {       /* whole vectors left: narrow panels */
        nv = q + 2 * RLVL <= N ? 2 : 1;
        FN(panel_narrow)(M, K, nv, a, g->lda, b + q, g->ldb, c + q, g->ldc, g->accumulate);
    }
    if (q < N) {
        /* the last columns, fewer than a vector: copied zero-padded to the narrowest panel that
         * holds them, computed into tmp, and the valid columns copied out */
        const long n = N - q, w = n <= RLVL ? RLVL : (n <= 2 * RLVL ? 2 * RLVL : W);
        long k, m, v, nv4[4];
        RLT *bp = (RLT *)malloc((size_t)(K * w + M * w) * sizeof(RLT)), *tmp = bp + K * w;
        if (bp == NULL)
            return -1;
        for (k = 0; k < K; k++) {
            memcpy(bp + k * w, b + k * g->ldb + q, n * sizeof(RLT));
            memset(bp + k * w + n, 0, (w - n) * sizeof(RLT));
        }
        if (w < W) {
            for (m = 0; m < M; m++) {
                for (v = 0; v < w; v++)
                    tmp[m * w + v] = (g->accumulate && v < n) ? c[m * g->ldc + q + v] : (RLT)0;
            }
            FN(panel_narrow)(M, K, (int)(w / RLVL), a, g->lda, bp, w, tmp, w, 1);
            for (m = 0; m < M; m++)
                memcpy(c + m * g->ldc + q, tmp + m * w, n * sizeof(RLT));
        } else {
            for (v = 0; v < 4; v++)
                nv4[v] = n - v * RLVL < 0 ? 0 : (n - v * RLVL > RLVL ? RLVL : n - v * RLVL);
            FN(panel_part)(M, K, a, g->lda, bp, c + q, g->ldc, RLVL, nv4, g->accumulate, tmp);
        }
        free(bp);
    }
    return 0;
}

/* ------------------------------------------------------------------------------ cell loops */
/* Units [0, n) of one row. Every gate (and peephole, and bias) gets its own restrict pointer:
 * with one pointer and a runtime stride H the compiler cannot prove that g[j] and g[H + j] never
 * overlap within a vector, and leaves the loop scalar. cprev and the peepholes are zeros when
 * absent, so the loop is the same for every variant. */
RL_INLINE void FN(cell_fwd_)(RLT *restrict gi, RLT *restrict gf, RLT *restrict gg,
                             RLT *restrict go, const RLT *restrict bi, const RLT *restrict bf,
                             const RLT *restrict bg, const RLT *restrict bo,
                             const RLT *restrict pi, const RLT *restrict pf,
                             const RLT *restrict po, const RLT *restrict cprev,
                             RLT *restrict c_out, RLT *restrict h_out, const int identity,
                             const int peep, long n)
{
    long j;
    for (j = 0; j < n; j++) {
        RLT cp = cprev[j];
        RLT ig = RL_SIGMOID(gi[j] + bi[j] + (peep ? pi[j] * cp : 0));
        RLT fg = RL_SIGMOID(gf[j] + bf[j] + (peep ? pf[j] * cp : 0));
        RLT ng = RL_TANH(gg[j] + bg[j]);
        RLT c = fg * cp + ig * ng;
        RLT og = RL_SIGMOID(go[j] + bo[j] + (peep ? po[j] * c : 0));
        gi[j] = ig; gf[j] = fg; gg[j] = ng; go[j] = og;
        c_out[j] = c;
        h_out[j] = og * (identity ? c : RL_TANH(c));
    }
}

/* g, bias point at unit 0 of a row (gates H apart), peep at p_i (p_f, p_o H apart) or NULL.
 * One compiled loop per (identity, peepholes) pair: the vanilla LSTM reads no peepholes. */
static void FN(cell_fwd)(RLT *g, long H, const RLT *bias, const RLT *cprev, RLT *c_out,
                         RLT *h_out, const RLT *peep, int identity, long n)
{
#define FN_CELL_FWD(ID, PP)                                                                    \
    FN(cell_fwd_)(g, g + H, g + 2 * H, g + 3 * H, bias, bias + H, bias + 2 * H, bias + 3 * H,  \
                  peep, PP ? peep + H : peep, PP ? peep + 2 * H : peep, cprev, c_out, h_out,   \
                  ID, PP, n)
    if (identity) {
        if (peep) FN_CELL_FWD(1, 1); else FN_CELL_FWD(1, 0);
    } else {
        if (peep) FN_CELL_FWD(0, 1); else FN_CELL_FWD(0, 0);
    }
#undef FN_CELL_FWD
}

/* The cell backward for units [0, n) of one row (the maths of _cells.h): dg = gradient on the
 * pre-activations, dc = gradient on c_{t-1}; dbias += dg; dpeep (when not NULL) += the
 * peephole gradients. Separate restrict pointers per gate, as above. */
RL_INLINE void FN(cell_bwd_)(const RLT *restrict ai, const RLT *restrict af,
                             const RLT *restrict ag, const RLT *restrict ao,
                             const RLT *restrict c, const RLT *restrict cp,
                             const RLT *restrict dy, const RLT *restrict dh, RLT *restrict dc,
                             RLT *restrict dgi, RLT *restrict dgf, RLT *restrict dgg,
                             RLT *restrict dgo, const RLT *restrict pi, const RLT *restrict pf,
                             const RLT *restrict po, RLT *restrict dbi, RLT *restrict dbf,
                             RLT *restrict dbg, RLT *restrict dbo, const int identity,
                             const int peep, long n)
{
    const RLT one = 1;
    long j;
    for (j = 0; j < n; j++) {
        RLT ig = ai[j], fg = af[j], gg = ag[j], og = ao[j];
        RLT act = identity ? c[j] : RL_TANH(c[j]);
        RLT dact = identity ? one : one - act * act;
        RLT dhj = dy[j] + dh[j];
        RLT dog = dhj * act * og * (one - og);
        RLT dcj = dc[j] + dhj * og * dact + (peep ? dog * po[j] : 0);
        RLT dig = dcj * gg * ig * (one - ig);
        RLT dfg = dcj * cp[j] * fg * (one - fg);
        RLT dng = dcj * ig * (one - gg * gg);
        dgi[j] = dig;
        dgf[j] = dfg;
        dgg[j] = dng;
        dgo[j] = dog;
        dbi[j] += dig;
        dbf[j] += dfg;
        dbg[j] += dng;
        dbo[j] += dog;
        dc[j] = dcj * fg + (peep ? dig * pi[j] + dfg * pf[j] : 0);
    }
}

RL_INLINE void FN(peep_grad_)(const RLT *restrict dgi, const RLT *restrict dgf,
                              const RLT *restrict dgo, const RLT *restrict c,
                              const RLT *restrict cp, RLT *restrict dpi, RLT *restrict dpf,
                              RLT *restrict dpo, long n)
{
    long j;
    for (j = 0; j < n; j++) {
        dpi[j] += dgi[j] * cp[j];
        dpf[j] += dgf[j] * cp[j];
        dpo[j] += dgo[j] * c[j];
    }
}

static void FN(cell_bwd)(const RLT *a, long H, const RLT *c, const RLT *cp, const RLT *dy,
                         const RLT *dh, RLT *dc, RLT *dg, const RLT *peep, RLT *dbias,
                         RLT *dpeep, int identity, long n)
{
    /* peep NULL: the vanilla LSTM (one compiled loop per variant, as forward) */
#define FN_CELL_BWD(ID, PP)                                                                    \
    FN(cell_bwd_)(a, a + H, a + 2 * H, a + 3 * H, c, cp, dy, dh, dc, dg, dg + H, dg + 2 * H,   \
                  dg + 3 * H, peep, PP ? peep + H : peep, PP ? peep + 2 * H : peep, dbias,     \
                  dbias + H, dbias + 2 * H, dbias + 3 * H, ID, PP, n)
    if (identity) {
        if (peep) FN_CELL_BWD(1, 1); else FN_CELL_BWD(1, 0);
    } else {
        if (peep) FN_CELL_BWD(0, 1); else FN_CELL_BWD(0, 0);
    }
#undef FN_CELL_BWD
    if (dpeep)
        FN(peep_grad_)(dg, dg + H, dg + 3 * H, c, cp, dpeep, dpeep + H, dpeep + 2 * H, n);
}

static int FN(cell_rows)(const rl_cell_rows *a)
{
    const long H = a->H;
    long b;
    RLT *zeros = (RLT *)calloc((size_t)(4 * H), sizeof(RLT));
    if (zeros == NULL)
        return -1;
    for (b = 0; b < a->B; b++)
        FN(cell_fwd)((RLT *)a->gates + b * a->ldg, H, zeros,
                     a->cprev ? (const RLT *)a->cprev + b * H : zeros,
                     (RLT *)a->c_out + b * H, (RLT *)a->h_out + b * H,
                     a->peep ? (const RLT *)a->peep + b * a->peep_ld : NULL, a->identity, H);
    free(zeros);
    return 0;
}

static int FN(cell_bwd_rows)(const rl_cell_bwd_rows *a)
{
    const long H = a->H;
    long b;
    RLT *zeros = (RLT *)calloc((size_t)(3 * H), sizeof(RLT));
    if (zeros == NULL)
        return -1;
    for (b = 0; b < a->B; b++)
        FN(cell_bwd)((const RLT *)a->a + b * a->ldg, H, (const RLT *)a->c + b * H,
                     a->cprev ? (const RLT *)a->cprev + b * H : zeros,
                     (const RLT *)a->dy + b * H, (const RLT *)a->dh + b * H,
                     (RLT *)a->dc + b * H, (RLT *)a->dg + b * a->ldg,
                     a->peep ? (const RLT *)a->peep + b * a->peep_ld : NULL,
                     (RLT *)a->dbias,
                     a->dpeep ? (RLT *)a->dpeep + b * a->dpeep_ld : NULL, a->identity, H);
    free(zeros);
    return 0;
}

/* ------------------------------------------------------------------------------ GRU cell */
RL_INLINE void FN(gru_fwd_)(RLT *restrict gr, RLT *restrict gz, RLT *restrict gn,
                            const RLT *restrict hr, const RLT *restrict hz,
                            const RLT *restrict hn, const RLT *restrict hp,
                            RLT *restrict ghn, RLT *restrict h_out, long H)
{
    long j;
    for (j = 0; j < H; j++) {
        RLT r = RL_SIGMOID(gr[j] + hr[j]);
        RLT z = RL_SIGMOID(gz[j] + hz[j]);
        RLT n = RL_TANH(gn[j] + r * hn[j]);
        gr[j] = r;
        gz[j] = z;
        gn[j] = n;
        ghn[j] = hn[j];
        h_out[j] = n + z * (hp[j] - n);
    }
}

static int FN(gru_fwd_rows)(const rl_gru_rows *a)
{
    const long H = a->H;
    long b;
    for (b = 0; b < a->B; b++) {
        RLT *g = (RLT *)a->g + b * a->ldg;
        const RLT *gh = (const RLT *)a->gh + b * a->ldgh;
        FN(gru_fwd_)(g, g + H, g + 2 * H, gh, gh + H, gh + 2 * H,
                     (const RLT *)a->hp + b * a->ldhp, (RLT *)a->ghn + b * a->ldghn,
                     (RLT *)a->h_out + b * a->ldh, H);
    }
    return 0;
}

RL_INLINE void FN(gru_bwd_)(const RLT *restrict ar, const RLT *restrict az,
                            const RLT *restrict an, const RLT *restrict ghn,
                            const RLT *restrict hp, const RLT *restrict dy, RLT *restrict dh,
                            RLT *restrict dxr, RLT *restrict dxz, RLT *restrict dxn,
                            RLT *restrict dhr, RLT *restrict dhz, RLT *restrict dhn, long H)
{
    const RLT one = 1;
    long j;
    for (j = 0; j < H; j++) {
        RLT r = ar[j], z = az[j], n = an[j];
        RLT d = dy[j] + dh[j];
        RLT dn = d * (one - z) * (one - n * n);
        RLT dz = d * (hp[j] - n) * z * (one - z);
        RLT dr = dn * ghn[j] * r * (one - r);
        dxr[j] = dr;
        dxz[j] = dz;
        dxn[j] = dn;
        dhr[j] = dr;
        dhz[j] = dz;
        dhn[j] = dn * r;
        dh[j] = d * z;
    }
}

static int FN(gru_bwd_rows)(const rl_gru_rows *a)
{
    const long H = a->H;
    long b;
    for (b = 0; b < a->B; b++) {
        const RLT *g = (const RLT *)a->g + b * a->ldg;
        RLT *dx = (RLT *)a->dgx + b * a->lddg, *dg = (RLT *)a->dgh + b * a->lddg;
        FN(gru_bwd_)(g, g + H, g + 2 * H, (const RLT *)a->ghn + b * a->ldghn,
                     (const RLT *)a->hp + b * a->ldhp, (const RLT *)a->dy + b * a->lddy,
                     (RLT *)a->dh + b * a->lddh, dx, dx + H, dx + 2 * H, dg, dg + H,
                     dg + 2 * H, H);
    }
    return 0;
}

/* ------------------------------------------------------------------------- the step */
/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, in 16 x 16 blocks: a block's
 * reads and writes stay in L1 (column by column, the step's 64 KB gate matrix was read from L2
 * once per batch row). */
static void FN(transpose)(const RLT *src, long lds, long rows, long cols, RLT *dst, long ldd)
{
    long r0, c0, r, c;
    for (r0 = 0; r0 < rows; r0 += 16) {
        const long r1 = r0 + 16 < rows ? r0 + 16 : rows;
        for (c0 = 0; c0 < cols; c0 += 16) {
            const long c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (c = c0; c < c1; c++)
                for (r = r0; r < r1; r++)
                    dst[c * ldd + r] = src[r * lds + c];
        }
    }
}

static int FN(step_layer)(const rl_step_layer *a)
{
    const long B = a->B, D = a->D, H = a->H, G4 = 4 * H;
    const RLT *x = (const RLT *)a->x, *h = (const RLT *)a->h;
    const RLT *b_ih = (const RLT *)a->b_ih, *b_hh = (const RLT *)a->b_hh;
    RLT *gates = (RLT *)a->work, *gT = gates + B * G4, *xT = gT + B * G4;
    rl_cell_rows cr;
    rl_gemm g;
    long n, b;
    int rc = 0;
    /* gT = (b_ih + b_hh)[:, None] */
    for (n = 0; n < G4; n++) {
        const RLT v = b_ih[n] + b_hh[n];
        for (b = 0; b < B; b++)
            gT[n * B + b] = v;
    }
    g.dbl = 0; g.M = G4; g.N = B; g.c = gT; g.ldc = B; g.accumulate = 1;
    g.b = xT; g.ldb = B;
    if (D > 0) {
        /* gT += W_ih @ x.T */
        FN(transpose)(x, D, B, D, xT, B);
        g.K = D; g.a = a->w_ih; g.lda = D;
        rc |= FN(gemm)(&g);
    }
    /* gT += W_hh @ h.T */
    FN(transpose)(h, H, B, H, xT, B);
    g.K = H; g.a = a->w_hh; g.lda = H;
    rc |= FN(gemm)(&g);
    FN(transpose)(gT, B, G4, B, gates, G4);
    cr.dbl = 0; cr.B = B; cr.H = H; cr.ldg = G4; cr.gates = gates;
    cr.cprev = a->c; cr.peep = a->peep; cr.peep_ld = 0; cr.c_out = a->c_out; cr.h_out = a->h_out;
    cr.identity = a->identity;
    rc |= FN(cell_rows)(&cr);
    return rc;
}

/* ------------------------------------------------------------------------------ conv2d */
/* The im2col matrix of an Atari batch is 13 MB, four times the images: materialised whole, the
 * layer would run at memory speed. So it is built and consumed one block of rows at a time (a
 * block stays in L2), forward and backward alike; backward rebuilds it from x. Its rows are
 * padded to 16 elements, so that the products whose N is k*k*C run on whole vectors. */
#define FN_CONV_LD(K) (((K) + 15) / 16 * 16)

static long FN(conv_rows)(long Kp)
{
    long rb = 131072 / (Kp * (long)sizeof(RLT)) / 64 * 64;
    return rb < 64 ? 64 : (rb > 1024 ? 1024 : rb);
}

/* cols[r - r0, (a*k + b)*C + c] = x[n, s*i + a, s*j + b, c], rows ld apart */
static void FN(im2col)(const rl_conv *p, long Ho, long Wo, long r0, long r1, RLT *cols, long ld)
{
    const long C = p->C, k = p->k, s = p->stride, run = k * C;
    const long sn = p->H * p->W * C;
    const long sy = p->channel_last ? p->W * C : p->W, sx = p->channel_last ? C : 1;
    const long sc = p->channel_last ? 1 : p->H * p->W;
    const RLT *x = (const RLT *)p->x;
    long r, a, b, c, q;
    for (r = r0; r < r1; r++) {
        const long n = r / (Ho * Wo), i = (r / Wo) % Ho, j = r % Wo;
        RLT *out = cols + (r - r0) * ld;
        for (a = 0; a < k; a++) {
            const RLT *src = x + n * sn + (s * i + a) * sy + s * j * sx;
            RLT *o = out + a * run;
            if (sc == 1) {
                for (q = 0; q < run; q++)
                    o[q] = src[q];
            } else {
                for (b = 0; b < k; b++)
                    for (c = 0; c < C; c++)
                        o[b * C + c] = src[b * sx + c * sc];
            }
        }
    }
}

static int FN(conv_fwd)(const rl_conv *p)
{
    const long Ho = (p->H - p->k) / p->stride + 1, Wo = (p->W - p->k) / p->stride + 1;
    const long R = p->N * Ho * Wo, K = p->k * p->k * p->C, Kp = FN_CONV_LD(K), O = p->O;
    const long RB = FN(conv_rows)(Kp);
    const RLT *w = (const RLT *)p->w, *bias = (const RLT *)p->bias;
    RLT *y = (RLT *)p->y, *cols, *wT;
    long r0, r, o;
    int rc = 0;
    if (R <= 0 || O <= 0)
        return 0;
    cols = (RLT *)calloc((size_t)(RB * Kp + K * O), sizeof(RLT));
    if (cols == NULL)
        return -1;
    wT = cols + RB * Kp;
    FN(transpose)(w, K, O, K, wT, O);
    for (r0 = 0; r0 < R && rc == 0; r0 += RB) {
        const long r1 = R < r0 + RB ? R : r0 + RB;
        rl_gemm g;
        FN(im2col)(p, Ho, Wo, r0, r1, cols, Kp);
        /* y[r0:r1] = cols @ w.T   (O columns: one or two vectors, the narrow tiles) */
        g.dbl = 0; g.M = r1 - r0; g.N = O; g.K = K;
        g.a = cols; g.lda = Kp; g.b = wT; g.ldb = O; g.c = y + r0 * O; g.ldc = O;
        g.accumulate = 0;
        rc = FN(gemm)(&g);
        for (r = r0; r < r1; r++) {
            RLT *yr = y + r * O;
            if (p->relu) {
                for (o = 0; o < O; o++) {
                    RLT v = yr[o] + bias[o];
                    yr[o] = v > 0 ? v : 0;
                }
            } else {
                for (o = 0; o < O; o++)
                    yr[o] += bias[o];
            }
        }
    }
    free(cols);
    return rc;
}

static int FN(conv_bwd)(const rl_conv *p)
{
    const long Ho = (p->H - p->k) / p->stride + 1, Wo = (p->W - p->k) / p->stride + 1;
    const long R = p->N * Ho * Wo, K = p->k * p->k * p->C, Kp = FN_CONV_LD(K), O = p->O;
    const long RB = FN(conv_rows)(Kp), C = p->C, k = p->k, s = p->stride, run = k * C;
    /* dyT's rows are RB + 16 apart, not RB: RB is a multiple of 64 elements, and rows a power
     * of two of bytes apart fall in the same L1 set */
    const long RBT = RB + 16;
    const RLT *w = (const RLT *)p->w, *y = (const RLT *)p->y;
    RLT *dy = (RLT *)p->dy, *dw = (RLT *)p->dw, *db = (RLT *)p->db, *dx = (RLT *)p->dx;
    RLT *cols, *dyT, *wp, *dwp;
    long r0, r, o, a, q;
    int rc = 0;
    if (R <= 0 || O <= 0)
        return 0;
    /* cols (RB, Kp) | dyT (O, RBT) | w and dw with rows Kp wide (zero past K) */
    cols = (RLT *)calloc((size_t)(RB * Kp + O * RBT + 2 * O * Kp), sizeof(RLT));
    if (cols == NULL)
        return -1;
    dyT = cols + RB * Kp;
    wp = dyT + O * RBT;
    dwp = wp + O * Kp;
    for (o = 0; o < O; o++)
        memcpy(wp + o * Kp, w + o * K, K * sizeof(RLT));
    if (dx)
        memset(dx, 0, (size_t)(p->N * p->H * p->W * C) * sizeof(RLT));
    for (r0 = 0; r0 < R && rc == 0; r0 += RB) {
        const long r1 = R < r0 + RB ? R : r0 + RB, nr = r1 - r0;
        rl_gemm g;
        for (r = r0; r < r1; r++) {
            RLT *d = dy + r * O;
            const RLT *yr = y + r * O;
            if (p->relu)
                for (o = 0; o < O; o++)
                    d[o] = yr[o] > 0 ? d[o] : 0;
            for (o = 0; o < O; o++)
                db[o] += d[o];
        }
        FN(transpose)(dy + r0 * O, O, nr, O, dyT, RBT);
        FN(im2col)(p, Ho, Wo, r0, r1, cols, Kp);
        /* dw += dyT @ cols   (Kp columns: whole vectors) */
        g.dbl = 0; g.M = O; g.N = Kp; g.K = nr;
        g.a = dyT; g.lda = RBT; g.b = cols; g.ldb = Kp; g.c = dwp; g.ldc = Kp;
        g.accumulate = 1;
        rc = FN(gemm)(&g);
        if (dx && rc == 0) {
            /* cols = dy[r0:r1] @ w (columns past K come out zero);  dx += col2im(cols) */
            g.M = nr; g.N = Kp; g.K = O;
            g.a = dy + r0 * O; g.lda = O; g.b = wp; g.ldb = Kp; g.c = cols; g.ldc = Kp;
            g.accumulate = 0;
            rc = FN(gemm)(&g);
            for (r = r0; r < r1; r++) {
                const long n = r / (Ho * Wo), i = (r / Wo) % Ho, j = r % Wo;
                const RLT *in = cols + (r - r0) * Kp;
                for (a = 0; a < k; a++) {
                    RLT *dst = dx + ((n * p->H + s * i + a) * p->W + s * j) * C;
                    for (q = 0; q < run; q++)
                        dst[q] += in[a * run + q];
                }
            }
        }
    }
    for (o = 0; o < O; o++)
        for (r = 0; r < K; r++)
            dw[o * K + r] += dwp[o * Kp + r];
    free(cols);
    return rc;
}

#undef FN_CONV_LD

/* ------------------------------------------------------------------------------ work memory */
#define FN_ROUND(n) ((((size_t)(n) * sizeof(RLT)) + 63) / 64 * 64)

static size_t FN(fwd_work)(const rl_lstm_seq *a, int nth)
{
    long P = (a->H + RLVL - 1) / RLVL;
    return FN_ROUND(P * a->H * 4 * RLVL) + FN_ROUND(3 * a->H)
           + (size_t)nth * FN_ROUND(a->B * 4 * RLVL);
}

static void FN(fwd_prepare)(const rl_lstm_seq *a, void *work)
{
    /* wp[p][k][g * VL + u] = W_hh[g * H + p * VL + u, k] (zero past H); then 3H zeros.
     * Written in order (the 4 VL source rows of a panel stay in L1 while k advances). */
    const long H = a->H, P = (H + RLVL - 1) / RLVL;
    const RLT *w = (const RLT *)a->w_hh;
    RLT *wp = (RLT *)work;
    long p, k, g, u;
    for (p = 0; p < P; p++) {
        const long n = H - p * RLVL < RLVL ? H - p * RLVL : RLVL;
        for (k = 0; k < H; k++) {
            RLT *dst = wp + (p * H + k) * 4 * RLVL;
            for (g = 0; g < 4; g++) {
                const RLT *src = w + (g * H + p * RLVL) * H + k;
                for (u = 0; u < n; u++)
                    dst[g * RLVL + u] = src[u * H];
                for (; u < RLVL; u++)
                    dst[g * RLVL + u] = 0;
            }
        }
    }
    memset((char *)work + FN_ROUND(P * H * 4 * RLVL), 0, 3 * H * sizeof(RLT));
}

static void FN(fwd_run)(const rl_lstm_seq *a, void *work, int tid, int nth, rl_barrier *bar)
{
    const long T = a->T, B = a->B, H = a->H, G4 = 4 * H, P = (H + RLVL - 1) / RLVL;
    const long p0 = P * tid / nth, p1 = P * (tid + 1) / nth;
    const long u0 = p0 * RLVL < H ? p0 * RLVL : H, u1 = p1 * RLVL < H ? p1 * RLVL : H;
    const RLT *wp = (const RLT *)work;
    const RLT *zeros = (const RLT *)((char *)work + FN_ROUND(P * H * 4 * RLVL));
    RLT *tmp = (RLT *)((char *)work + FN_ROUND(P * H * 4 * RLVL) + FN_ROUND(3 * H)
                       + (size_t)tid * FN_ROUND(B * 4 * RLVL));
    const unsigned char *rs = a->resets;
    const RLT *bias = (const RLT *)a->bias, *h0 = (const RLT *)a->h0, *c0 = (const RLT *)a->c0;
    const RLT *peep = a->peephole ? (const RLT *)a->peep : NULL;
    RLT *gates = (RLT *)a->gates, *cs = (RLT *)a->cs, *hprev = (RLT *)a->hprev;
    RLT *y = (RLT *)a->y + a->yoff;
    const long ldy = a->ldy;
    long s, b, p, t, tp = 0;

    /* hprev of the first step: h0, zero where the row resets */
    t = a->reverse ? T - 1 : 0;
    for (b = 0; b < B; b++) {
        RLT *dst = hprev + (t * B + b) * H;
        if (rs && rs[t * B + b])
            memset(dst + u0, 0, (u1 - u0) * sizeof(RLT));
        else
            memcpy(dst + u0, h0 + b * H + u0, (u1 - u0) * sizeof(RLT));
    }
    if (bar) rl_barrier_wait(bar);
    for (s = 0; s < T; s++) {
        const long tn = a->reverse ? t - 1 : t + 1;   /* the next step */
        RLT *g = gates + t * B * G4;
        const RLT *A = hprev + t * B * H;
        for (p = p0; p < p1; p++) {
            const long j0 = p * RLVL, n = H - j0 < RLVL ? H - j0 : RLVL;
            /* gates[t][:, gate * H + units] += hprev[t] @ W_hh[gate * H + units].T */
            if (n == RLVL) {
                FN(panel)(B, H, A, H, wp + p * H * 4 * RLVL, g + j0, G4, H, 1);
            } else {
                long nv[4] = {n, n, n, n};
                FN(panel_part)(B, H, A, H, wp + p * H * 4 * RLVL, g + j0, G4, H, nv, 1, tmp);
            }
            /* the cell update of these units, while the gates are in L1 */
            for (b = 0; b < B; b++) {
                const long r = t * B + b;
                const int reset = rs && rs[t * B + b];
                const RLT *cp = reset ? zeros : (s == 0 ? c0 + b * H : cs + (tp * B + b) * H);
                RLT *h = y + r * ldy + j0;
                FN(cell_fwd)(g + b * G4 + j0, H, bias + j0, cp + j0, cs + r * H + j0, h,
                             peep ? peep + j0 : NULL, a->identity, n);
                if (s + 1 < T) {
                    RLT *dst = hprev + (tn * B + b) * H + j0;
                    if (rs && rs[tn * B + b])
                        memset(dst, 0, n * sizeof(RLT));
                    else
                        memcpy(dst, h, n * sizeof(RLT));
                }
            }
        }
        if (bar) rl_barrier_wait(bar);
        tp = t;
        t = tn;
    }
    for (b = 0; b < B; b++) {
        memcpy((RLT *)a->h_n + b * H + u0, y + (tp * B + b) * ldy + u0, (u1 - u0) * sizeof(RLT));
        memcpy((RLT *)a->c_n + b * H + u0, cs + (tp * B + b) * H + u0, (u1 - u0) * sizeof(RLT));
    }
}

static size_t FN(bwd_work)(const rl_lstm_seq *a, int nth)
{
    long Q = (a->H + 4 * RLVL - 1) / (4 * RLVL);
    return FN_ROUND(Q * 4 * a->H * 4 * RLVL) + FN_ROUND(3 * a->H)
           + (size_t)nth * FN_ROUND(a->B * 4 * RLVL);
}

static void FN(bwd_prepare)(const rl_lstm_seq *a, void *work)
{
    /* wq[q][k][u] = W_hh[k, q * 4VL + u] (k < 4H; zero past H); then 3H zeros */
    const long H = a->H, G4 = 4 * H, Q = (H + 4 * RLVL - 1) / (4 * RLVL);
    const RLT *w = (const RLT *)a->w_hh;
    RLT *wq = (RLT *)work;
    long q, k, u;
    for (q = 0; q < Q; q++) {
        const long j0 = q * 4 * RLVL, n = H - j0 < 4 * RLVL ? H - j0 : 4 * RLVL;
        for (k = 0; k < G4; k++) {
            RLT *dst = wq + (q * G4 + k) * 4 * RLVL;
            memcpy(dst, w + k * H + j0, n * sizeof(RLT));
            for (u = n; u < 4 * RLVL; u++)
                dst[u] = 0;
        }
    }
    memset((char *)work + FN_ROUND(Q * G4 * 4 * RLVL), 0, 3 * H * sizeof(RLT));
}

/* The cell backward of forward-order step fs for units [j0, j0 + n), every row. */
static void FN(cellb_step)(const rl_lstm_seq *a, const RLT *zeros, long fs, long j0, long n)
{
    const long T = a->T, B = a->B, H = a->H, G4 = 4 * H;
    const long t = a->reverse ? T - 1 - fs : fs, tp = a->reverse ? t + 1 : t - 1;
    const unsigned char *rs = a->resets;
    const RLT *gates = (const RLT *)a->gates, *cs = (const RLT *)a->cs;
    const RLT *c0 = (const RLT *)a->c0;
    const RLT *dy = (const RLT *)a->dy + a->dyoff;
    const RLT *peep = a->peephole ? (const RLT *)a->peep : NULL;
    RLT *dpeep = a->peephole ? (RLT *)a->dpeep + j0 : NULL;
    RLT *dh = (RLT *)a->dh, *dc = (RLT *)a->dc, *dg = (RLT *)a->dgates;
    RLT *dbias = (RLT *)a->dbias;
    long b;
    for (b = 0; b < B; b++) {
        const long r = t * B + b;
        const int reset = rs && rs[t * B + b];
        const RLT *cp = reset ? zeros : (fs == 0 ? c0 + b * H : cs + (tp * B + b) * H);
        FN(cell_bwd)(gates + r * G4 + j0, H, cs + r * H + j0, cp + j0,
                     dy + r * a->lddy + j0, dh + b * H + j0, dc + b * H + j0,
                     dg + r * G4 + j0, peep ? peep + j0 : NULL, dbias + j0, dpeep, a->identity,
                     n);
        if (reset)
            memset(dc + b * H + j0, 0, n * sizeof(RLT));
    }
}

static void FN(bwd_run)(const rl_lstm_seq *a, void *work, int tid, int nth, rl_barrier *bar)
{
    const long T = a->T, B = a->B, H = a->H, G4 = 4 * H, W = 4 * RLVL;
    const long Q = (H + W - 1) / W;
    const long q0 = Q * tid / nth, q1 = Q * (tid + 1) / nth;
    const long u0 = q0 * W < H ? q0 * W : H, u1 = q1 * W < H ? q1 * W : H;
    const RLT *wq = (const RLT *)work;
    const RLT *zeros = (const RLT *)((char *)work + FN_ROUND(Q * G4 * W));
    RLT *tmp = (RLT *)((char *)work + FN_ROUND(Q * G4 * W) + FN_ROUND(3 * H)
                       + (size_t)tid * FN_ROUND(B * W));
    const unsigned char *rs = a->resets;
    RLT *dh = (RLT *)a->dh, *dc = (RLT *)a->dc;
    const RLT *dgates = (const RLT *)a->dgates;
    long fs, q, b;

    if (u1 > u0)
        FN(cellb_step)(a, zeros, T - 1, u0, u1 - u0);
    if (bar) rl_barrier_wait(bar);
    for (fs = T - 1; fs >= 0; fs--) {
        const long t = a->reverse ? T - 1 - fs : fs;
        const RLT *A = dgates + t * B * G4;
        for (q = q0; q < q1; q++) {
            const long j0 = q * W, n = H - j0 < W ? H - j0 : W;
            /* dh[:, units] = dgates[t] @ W_hh[:, units]   (the gradient on h_{t-1}) */
            if (n == W) {
                FN(panel)(B, G4, A, G4, wq + q * G4 * W, dh + j0, H, RLVL, 0);
            } else {
                long v, nv[4];
                for (v = 0; v < 4; v++)
                    nv[v] = n - v * RLVL < 0 ? 0 : (n - v * RLVL > RLVL ? RLVL : n - v * RLVL);
                FN(panel_part)(B, G4, A, G4, wq + q * G4 * W, dh + j0, H, RLVL, nv, 0, tmp);
            }
            if (rs)
                for (b = 0; b < B; b++)
                    if (rs[t * B + b]) {
                        memset(dh + b * H + j0, 0, n * sizeof(RLT));
                        memset(dc + b * H + j0, 0, n * sizeof(RLT));
                    }
            if (fs > 0)
                FN(cellb_step)(a, zeros, fs - 1, j0, n);
        }
        if (bar) rl_barrier_wait(bar);
    }
}

#undef FN_ROUND
#undef FN_KC
