/* Runtime SIMD dispatch and the thread team of the recurrent sweeps.
 *
 * setup.py compiles the kernel body once per SIMD level (_rlk_<level>.c, each with its own -m
 * flags) and this file for the baseline target, with RL_HAVE_<LEVEL> for every level it built.
 * At import the best level this CPU runs is selected from CPUID (GCC/Clang's
 * __builtin_cpu_supports, which also checks that the OS saves the wider registers);
 * the environment variable RLSTM_SIMD (read by rlstm/_kernels.pyx) forces another one.
 */
#include <stdlib.h>
#include <string.h>

#include "_rlk_internal.h"

#if defined(__unix__) || defined(__APPLE__)
#  include <pthread.h>
#  include <sched.h>
#  define RL_HAVE_THREADS 1
#endif

/* The levels of this build, best first. */
static const rl_isa_table *const levels[] = {
#ifdef RL_HAVE_AVX512
    &rl_table_avx512,
#endif
#ifdef RL_HAVE_AVX2
    &rl_table_avx2,
#endif
#ifdef RL_HAVE_SSE2
    &rl_table_sse2,
#endif
#ifdef RL_HAVE_NEON
    &rl_table_neon,
#endif
    &rl_table_generic,
};
#define NLEVELS ((int)(sizeof(levels) / sizeof(levels[0])))

static int cpu_runs(const char *name)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!strcmp(name, "avx512"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(name, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    /* sse2 is the x86-64 baseline, neon the aarch64 one, generic is plain C */
    return !strcmp(name, "sse2") || !strcmp(name, "neon") || !strcmp(name, "generic");
}

static const rl_isa_table *current = NULL;
static char compiled[64];

static const rl_isa_table *best(void)
{
    int i;
    for (i = 0; i < NLEVELS; i++)
        if (cpu_runs(levels[i]->name))
            return levels[i];
    return &rl_table_generic;
}

int rl_simd_select(const char *name)
{
    int i;
    if (name == NULL || name[0] == '\0' || !strcmp(name, "auto")) {
        current = best();
        return 0;
    }
    for (i = 0; i < NLEVELS; i++)
        if (!strcmp(levels[i]->name, name)) {
            if (!cpu_runs(name))
                return -2;
            current = levels[i];
            return 0;
        }
    return -1;
}

const char *rl_simd_current(void)
{
    if (current == NULL)
        current = best();
    return current->name;
}

const char *rl_simd_compiled(void)
{
    int i;
    if (compiled[0] == '\0')
        for (i = 0; i < NLEVELS; i++) {
            if (i)
                strcat(compiled, ",");
            strcat(compiled, levels[i]->name);
        }
    return compiled;
}

int rl_simd_supported(const char *name)
{
    int i;
    for (i = 0; i < NLEVELS; i++)
        if (!strcmp(levels[i]->name, name))
            return cpu_runs(name);
    return 0;
}

/* ------------------------------------------------------------------------------ threads */
static int num_threads = 1;
static long team_sweeps = 0;   /* sweeps run by more than one thread (for the tests) */

long rl_team_sweeps(void) { return __atomic_load_n(&team_sweeps, __ATOMIC_RELAXED); }

void rlstm_set_num_threads(int n) { num_threads = n < 1 ? 1 : n; }
int rlstm_get_num_threads(void) { return num_threads; }

struct rl_barrier {
    int n;
    int count;
    int gen;
};

void rl_barrier_wait(rl_barrier *b)
{
#if defined(RL_HAVE_THREADS)
    int gen, spins = 0;
    if (b->n <= 1)
        return;
    gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->gen, 1, __ATOMIC_RELEASE);
        return;
    }
    /* spin (a step is tens of microseconds), then yield: the cores may be shared */
    while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen) {
        if (++spins > 4000)
            sched_yield();
    }
#else
    (void)b;
#endif
}

typedef struct {
    const rl_lstm_seq *a;
    void *work;
    int tid, nth, backward;
    rl_barrier *bar;
    const rl_isa_table *k;
    int *go;               /* 0: wait, 1: run, -1: the team could not start, return */
} team_job;

static void *team_main(void *p)
{
    team_job *j = (team_job *)p;
#if defined(RL_HAVE_THREADS)
    int go;
    while ((go = __atomic_load_n(j->go, __ATOMIC_ACQUIRE)) == 0)
        sched_yield();
    if (go < 0)
        return NULL;
#endif
    if (j->backward)
        j->k->bwd_run(j->a, j->work, j->tid, j->nth, j->bar);
    else
        j->k->fwd_run(j->a, j->work, j->tid, j->nth, j->bar);
    return NULL;
}

/* Threads that pay for a sweep: one per panel at most, and only when a step's recurrent
 * product is large enough (>= 2^23 flops, about 50 us on one core: B=32, H=256) that starting
 * a thread per call and meeting at a barrier per step cost little. Measured at B=16, H=128
 * (2^21 flops a step), two threads were slower than one. */
static int sweep_threads(const rl_lstm_seq *a, const rl_isa_table *k, int backward)
{
    long panels, units = k->units_per_panel(a->dbl, backward);
    int n = a->nthreads > 0 ? a->nthreads : num_threads;
    double flops = 8.0 * (double)a->B * (double)a->H * (double)a->H;
    panels = (a->H + units - 1) / units;
    if (n > panels)
        n = (int)panels;
    if (n > 64)
        n = 64;
    if (flops < 8388608.0 || a->T < 2)
        n = 1;
#if !defined(RL_HAVE_THREADS)
    n = 1;
#endif
    return n < 1 ? 1 : n;
}

/* One work buffer kept between calls (the largest asked for so far): a fresh one of several
 * megabytes costs page faults and zeroing by the OS at every call, as much as packing the
 * weights. A call that finds it in use (another thread's sweep) allocates its own. */
static void *work_cache = NULL;
static size_t work_cache_size = 0;
static int work_cache_busy = 0;

static void *work_get(size_t bytes, int *cached)
{
    void *p = NULL;
    *cached = 0;
#if defined(RL_HAVE_THREADS)
    if (__atomic_exchange_n(&work_cache_busy, 1, __ATOMIC_ACQUIRE) == 0) {
        if (work_cache_size < bytes) {
            free(work_cache);
            work_cache = NULL;
            work_cache_size = 0;
            if (posix_memalign(&work_cache, 64, bytes) == 0)
                work_cache_size = bytes;
            else
                work_cache = NULL;
        }
        if (work_cache != NULL) {
            *cached = 1;
            return work_cache;
        }
        __atomic_store_n(&work_cache_busy, 0, __ATOMIC_RELEASE);
    }
    if (posix_memalign(&p, 64, bytes) != 0)
        p = NULL;
#else
    p = malloc(bytes);
#endif
    return p;
}

static void work_put(void *p, int cached)
{
#if defined(RL_HAVE_THREADS)
    if (cached) {
        __atomic_store_n(&work_cache_busy, 0, __ATOMIC_RELEASE);
        return;
    }
#endif
    (void)cached;
    free(p);
}

static int run_sweep(const rl_lstm_seq *a, int backward)
{
    const rl_isa_table *k = current ? current : (current = best());
    int nth = sweep_threads(a, k, backward), i, go = 0;
    size_t bytes = backward ? k->bwd_work(a, nth) : k->fwd_work(a, nth);
    int cached;
    void *work = work_get(bytes ? bytes : 64, &cached);
    rl_barrier bar;
    team_job jobs[64];
#if defined(RL_HAVE_THREADS)
    pthread_t tids[64];
    int started = 1;
#endif
    if (work == NULL)
        return -1;
    if (backward)
        k->bwd_prepare(a, work);
    else
        k->fwd_prepare(a, work);
    bar.n = nth;
    bar.count = 0;
    bar.gen = 0;
    for (i = 0; i < nth; i++) {
        jobs[i].a = a;
        jobs[i].work = work;
        jobs[i].tid = i;
        jobs[i].nth = nth;
        jobs[i].backward = backward;
        jobs[i].bar = nth > 1 ? &bar : NULL;
        jobs[i].k = k;
        jobs[i].go = &go;
    }
#if defined(RL_HAVE_THREADS)
    for (i = 1; i < nth; i++) {
        if (pthread_create(&tids[i], NULL, team_main, &jobs[i]) != 0)
            break;
        started++;
    }
    if (started < nth) {
        /* the team could not start: release the threads that did, and sweep alone (the
         * per-thread scratch of thread 0 is the same size whatever nth was) */
        __atomic_store_n(&go, -1, __ATOMIC_RELEASE);
        for (i = 1; i < started; i++)
            pthread_join(tids[i], NULL);
        jobs[0].nth = 1;
        jobs[0].bar = NULL;
        started = 1;
    } else {
        if (nth > 1)
            __atomic_add_fetch(&team_sweeps, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    }
#else
    go = 1;
#endif
    team_main(&jobs[0]);
#if defined(RL_HAVE_THREADS)
    for (i = 1; i < started; i++)
        pthread_join(tids[i], NULL);
#endif
    work_put(work, cached);
    return 0;
}

int rl_gemm_run(const rl_gemm *g)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->gemm(g);
}

int rl_lstm_cell_rows(const rl_cell_rows *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->cell_rows(a);
}

int rl_lstm_step_layer(const rl_step_layer *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->step_layer(a);
}

int rl_lstm_cell_bwd_rows(const rl_cell_bwd_rows *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->cell_bwd_rows(a);
}

int rl_gru_cell_fwd_rows(const rl_gru_rows *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->gru_fwd_rows(a);
}

int rl_gru_cell_bwd_rows(const rl_gru_rows *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->gru_bwd_rows(a);
}

int rl_conv_forward(const rl_conv *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->conv_fwd(a);
}

int rl_conv_backward(const rl_conv *a)
{
    const rl_isa_table *k = current ? current : (current = best());
    return k->conv_bwd(a);
}

int rl_lstm_forward(const rl_lstm_seq *a) { return run_sweep(a, 0); }
int rl_lstm_backward(const rl_lstm_seq *a) { return run_sweep(a, 1); }
