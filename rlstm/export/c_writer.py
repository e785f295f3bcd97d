"""``to_c``: a trained policy as dependency-free C99 source (``NAME.h`` + ``NAME.c``).

The source needs only ``<math.h>``: float32 ``static const`` weights, no heap, no globals that
change, no threads. One ``NAME_state`` per env holds the recurrent state, the last value and
the scratch memory of a step, so the code is re-entrant and its memory is whatever the caller
gives it (a static, a stack variable, a struct member)::

    #include "policy.h"
    static policy_state st;                            /* one per env */
    policy_reset(&st);                                 /* at every episode start */
    float obs[POLICY_OBS_SIZE], action[POLICY_ACTION_SIZE];
    ... fill obs (the flat layout in policy.h) ...
    if (policy_step(&st, obs, action) != POLICY_OK) { ... bad observation or mask ... }

``NAME_step`` computes ``Predictor.predict(obs, state, episode_start=False,
deterministic=True)`` for one env (see :mod:`rlstm.export.plan`) and returns ``NAME_OK``;
for an observation the predictor would refuse (NaN or inf, a discrete value outside its
space, a mask that forbids every action of a head) it returns ``NAME_BAD_OBSERVATION`` or
``NAME_MASK_FORBIDS_ALL`` and changes neither the state nor ``action``. The header comment
records the source model, both spaces and the flat layouts. It compiles cleanly with
``cc -std=c99 -Wall -Wextra -Werror -O2`` and under ``-fsanitize=address,undefined``; link
with ``-lm``.
"""
from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from .. import __version__
from .files import write_atomic
from .layout import categories, path_name
from .plan import Core, ExportPlan

__all__ = ["to_c"]

_C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex _Imaginary main""".split())
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}\Z")


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in _C_KEYWORDS:
        raise ValueError(f"name must be a C identifier of at most 48 characters (a letter, "
                         f"then letters, digits or '_'; not a C keyword), got {name!r}")
    return name


def _c_paths(out, name) -> tuple[pathlib.Path, str]:
    """``(folder, name)`` from ``out`` (a folder, or a path prefix ``folder/name[.c|.h]``)."""
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a folder or a path prefix (str or os.PathLike), got "
                        f"{type(out).__name__}")
    text = os.fspath(out)
    if not text:
        raise ValueError("out is empty; give a folder (e.g. 'build/') or a path prefix "
                         "(e.g. 'build/policy')")
    p = pathlib.Path(text)
    if p.is_dir() or text.endswith(("/", os.sep)):
        return p, _check_name("policy" if name is None else name)
    base = p.name[:-2] if p.suffix in (".c", ".h") else p.name
    if name is not None and name != base:
        raise ValueError(f"name={name!r} differs from the file name {base!r} in out={text!r}; "
                         f"give out as a folder to choose the name, or drop name=")
    try:
        return p.parent, _check_name(base)
    except ValueError:
        raise ValueError(f"the file name {base!r} of out={text!r} is not a C identifier (a "
                         f"letter, then letters, digits or '_'); it names the C functions: "
                         f"give out as a folder and name= instead") from None


# ---------------------------------------------------------------------------- literals
def _f32(v: float) -> str:
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    s = "%.9g" % v
    return (s if ("." in s or "e" in s or "n" in s) else s + ".0") + "f"


def _f64(v: float) -> str:
    s = "%.17g" % v
    return s if ("." in s or "e" in s) else s + ".0"


def _pad16(n: int) -> int:
    """``n`` rounded up to a multiple of 16 (the C side's ``pad16``)."""
    return (int(n) + 15) // 16 * 16


def _padded_t(w) -> np.ndarray:
    """``w`` (out, in) transposed to (in, out) with zero columns up to ``_pad16(out)``: the
    storage ``gemv_t`` reads."""
    w = np.asarray(w, dtype=np.float64)
    out = np.zeros((w.shape[1], _pad16(w.shape[0])))
    out[:, :w.shape[0]] = w.T
    return out


def _padded(b) -> np.ndarray:
    """A bias padded with zeros to ``_pad16(len)``."""
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    return np.concatenate([b, np.zeros(_pad16(b.size) - b.size)])


def _array(ctype: str, name: str, values, comment: str) -> str:
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    if ctype == "float":
        vals = vals.astype(np.float32).astype(np.float64)
    fmt = _f32 if ctype == "float" else (lambda v: str(int(v))) if ctype == "int" else _f64
    items = [fmt(v) for v in vals.tolist()]
    per = 8 if ctype == "float" else 4
    lines = [", ".join(items[i:i + per]) for i in range(0, len(items), per)]
    body = ",\n    ".join(lines)
    return f"/* {comment} */\nstatic const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


# ---------------------------------------------------------------------------- kernels
# The C helpers a step may use; only those it uses are written (an unused static function is a
# warning under -Wall). Loops over units run eight at a time with a scalar tail, and the math
# functions are branch-free, so that plain -O2 compiles them to SIMD code.
_KERNELS = {
    "exp": """/* exp, sigmoid and tanh without libm calls and without branches. fast_expf is rlstm's
   own kernel exp (rlstm/_fastmath.h: Cephes range reduction and polynomial, 1-2 ulp); its
   input is clamped by selecting on the bits, so large |x| gives 0 or a large finite number,
   never inf or NaN. tanh(x) = sign(x) (1 - 2 / (exp(2 |x|) + 1)): absolute error < 2e-7. */
typedef char int_is_32_bits[sizeof(int) == 4 ? 1 : -1];
typedef union { float f; int i; } bits32;

static inline float clampf(float x, float lo, float hi) {
    bits32 v, l, h;
    v.f = x; l.f = lo; h.f = hi;
    int m = -(x < lo);
    v.i = (l.i & m) | (v.i & ~m);
    m = -(v.f > hi);
    v.i = (h.i & m) | (v.i & ~m);
    return v.f;
}

static inline float fast_expf(float x) {
    bits32 t, s;
    x = clampf(x, -87.3365447504f, 88.3762626647949f);
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - n ln 2 in two parts */
    t.f = x * 1.44269504088896341f + 12582912.0f;
    const float n = t.f - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    const float y = (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r
                       + 4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z
                    + r + 1.0f;
    s.i = (t.i - 0x4B400000 + 127) * 8388608;  /* 2^n: (n + 127) << 23 */
    return y * s.f;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

static inline float fast_tanhf(float x) {
    return copysignf(1.0f - 2.0f / (fast_expf(2.0f * fabsf(x)) + 1.0f), x);
}
""",
    "copy": """static void copy(float *restrict y, const float *restrict x, int n) {
    for (int i = 0; i < n; ++i) y[i] = x[i];
}
""",
    "gemv_t": """/* n rounded up to a multiple of 16: the padded length of gemv_t's outputs */
static int pad16(int n) { return (n + 15) / 16 * 16; }

/* y += W x for W (n_out, n_in), stored transposed and padded: wt[j * n_out + i] = W[i][j],
   n_out a multiple of 16 (zero rows added). Four columns and sixteen rows at a time: the
   fixed 16-wide inner loop compiles to SIMD code at -O2 (4 SSE, 2 AVX or 1 AVX-512 vector),
   and y is loaded and stored once per four columns. */
static void gemv_t(float *restrict y, const float *restrict wt, const float *restrict x,
                   int n_in, int n_out) {
    int j = 0;
    for (; j + 4 <= n_in; j += 4) {
        const float x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
        const float *restrict w0 = wt + (long)j * n_out;
        const float *restrict w1 = w0 + n_out;
        const float *restrict w2 = w1 + n_out;
        const float *restrict w3 = w2 + n_out;
        for (int i = 0; i < n_out; i += 16)
            for (int k = 0; k < 16; ++k)
                y[i + k] += (w0[i + k] * x0 + w1[i + k] * x1) + (w2[i + k] * x2 + w3[i + k] * x3);
    }
    for (; j < n_in; ++j) {
        const float xj = x[j];
        const float *restrict w = wt + (long)j * n_out;
        for (int i = 0; i < n_out; i += 16)
            for (int k = 0; k < 16; ++k) y[i + k] += w[i + k] * xj;
    }
}
""",
    "dense": """/* y = act(W x + b), act 0: none, 1: tanh, 2: relu; all padded */
static void dense(float *restrict y, const float *restrict wt, const float *restrict b,
                  const float *restrict x, int n_in, int n_out, int act) {
    n_out = pad16(n_out);
    copy(y, b, n_out);
    gemv_t(y, wt, x, n_in, n_out);
    for (int i = 0; i < n_out && act; i += 16)
        for (int k = 0; k < 16; ++k)
            y[i + k] = act == 1 ? fast_tanhf(y[i + k]) : (y[i + k] > 0.0f ? y[i + k] : 0.0f);
}
""",
    "gru": """/* One GRU unit (PyTorch's form, gates r, z, n), from a = W_ih x + b_ih
   and u = W_hh h + b_hh:  r = s(a_r + u_r);  z = s(a_z + u_z);  n = tanh(a_n + r u_n);
   h = (1 - z) n + z h */
static inline void gru_unit(float *restrict h, const float *restrict a,
                            const float *restrict u, int H, int k) {
    const float r = sigmoid(a[k] + u[k]);
    const float z = sigmoid(a[H + k] + u[H + k]);
    const float n = fast_tanhf(a[2 * H + k] + r * u[2 * H + k]);
    h[k] = (1.0f - z) * n + z * h[k];
}

/* One GRU layer step; a and u are scratch of pad16(3H) floats */
static void gru(float *restrict h, const float *restrict x, int n_in, int H,
                const float *restrict wih_t, const float *restrict whh_t,
                const float *restrict b_ih, const float *restrict b_hh,
                float *restrict a, float *restrict u) {
    const int n = pad16(3 * H);
    copy(a, b_ih, n);
    gemv_t(a, wih_t, x, n_in, n);
    copy(u, b_hh, n);
    gemv_t(u, whh_t, h, H, n);
    int k = 0;
    for (; k + 8 <= H; k += 8)
        for (int q = 0; q < 8; ++q) gru_unit(h, a, u, H, k + q);
    for (; k < H; ++k) gru_unit(h, a, u, H, k);
}
""",
    "conv": """/* y (O, Ho, Wo) = relu(b + conv(x (C, Hi, Wi), w (O, C, k, k), stride s)) */
static void conv_relu(float *restrict y, const float *restrict x, const float *restrict w,
                      const float *restrict b, int C, int Hi, int Wi, int O, int k, int s,
                      int Ho, int Wo) {
    for (int o = 0; o < O; ++o)
        for (int i = 0; i < Ho; ++i)
            for (int j = 0; j < Wo; ++j) {
                float acc = b[o];
                for (int c = 0; c < C; ++c)
                    for (int p = 0; p < k; ++p) {
                        const float *xr = x + ((long)c * Hi + (long)s * i + p) * Wi + (long)s * j;
                        const float *wr = w + (((long)o * C + c) * k + p) * k;
                        for (int q = 0; q < k; ++q) acc += xr[q] * wr[q];
                    }
                y[((long)o * Ho + i) * Wo + j] = acc > 0.0f ? acc : 0.0f;
            }
}
""",
    "argmax": """/* the first index of the largest z[i] among allowed ones (allowed 0: all) */
static int argmax(const float *z, int n, const float *allowed) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
        if (allowed && allowed[i] == 0.0f) continue;
        if (best < 0 || z[i] > z[best]) best = i;
    }
    return best;
}
""",
    "finite": """static int all_finite(const float *x, int n) {
    for (int i = 0; i < n; ++i) if (!isfinite(x[i])) return 0;
    return 1;
}
""",
    "nonan": """static int no_nan(const float *x, int n) {
    for (int i = 0; i < n; ++i) if (isnan(x[i])) return 0;
    return 1;
}
""",
    "index": """/* whether v is an integer in lo .. lo + n - 1 */
static int valid_index(float v, float lo, int n) {
    return v >= lo && v <= lo + (float)(n - 1) && v == floorf(v);
}
""",
    "anyset": """static int any_set(const float *x, int n) {
    for (int i = 0; i < n; ++i) if (x[i] != 0.0f) return 1;
    return 0;
}
""",
}
_NEEDS = {"dense": ("copy", "gemv_t", "exp"), "gru": ("copy", "gemv_t", "exp")}


def _lstm_kernel(name: str, peephole: bool, cell_rec: bool, identity: bool) -> str:
    """The C step of one LSTM layer of one variant, with only that variant's arithmetic."""
    act = "cn" if identity else "fast_tanhf(cn)"
    if cell_rec:
        what = ("peephole_cell: the gates read c through U (3H, H), u = U c is scratch of "
                "pad16(3H)\n   i = s(z_i + u_i);  f = s(z_f + u_f);  g = tanh(z_g);  "
                "o = s(z_o + u_o)")
        unit_args, call_args = "const float *restrict u", "u"
        gi, gf, go = "z[k] + u[k]", "z[H + k] + u[H + k]", "z[3 * H + k] + u[2 * H + k]"
        layer_args = ("const float *restrict wch_t, const float *restrict b,\n"
                      "                 float *restrict z, float *restrict u")
        rec = ("    for (int k = 0; k < pad16(3 * H); ++k) u[k] = 0.0f;\n"
               "    gemv_t(u, wch_t, c, H, pad16(3 * H));  /* u = U c_{t-1} */")
    elif peephole:
        what = ("peepholes p = (p_i, p_f, p_o)\n   i = s(z_i + p_i c);  f = s(z_f + p_f c);  "
                "g = tanh(z_g);  o = s(z_o + p_o c_t)")
        unit_args, call_args = "const float *restrict p", "p"
        gi, gf, go = "z[k] + p[k] * cp", "z[H + k] + p[H + k] * cp", \
            "z[3 * H + k] + p[2 * H + k] * cn"
        layer_args = ("const float *restrict whh_t, const float *restrict b,\n"
                      "                 const float *restrict p, float *restrict z")
        rec = "    gemv_t(z, whh_t, h, H, pad16(4 * H));  /* z += W_hh h_{t-1} */"
    else:
        what = "i = s(z_i);  f = s(z_f);  g = tanh(z_g);  o = s(z_o)"
        unit_args = call_args = ""
        gi, gf, go = "z[k]", "z[H + k]", "z[3 * H + k]"
        layer_args = ("const float *restrict whh_t, const float *restrict b,\n"
                      "                 float *restrict z")
        rec = "    gemv_t(z, whh_t, h, H, pad16(4 * H));  /* z += W_hh h_{t-1} */"
    unit_sig = f", {unit_args}" if unit_args else ""
    call = f", {call_args}" if call_args else ""
    return f"""/* One unit of an LSTM layer, gates i, f, g, o from z = W_ih x + W_hh h + b; {what}
   c = f c + i g;  h = o {'c (identity cell activation)' if identity else 'tanh(c)'} */
static inline void {name}_unit(float *restrict h, float *restrict c,
                               const float *restrict z{unit_sig}, int H, int k) {{
    const float cp = c[k];
    const float i = sigmoid({gi});
    const float f = sigmoid({gf});
    const float g = fast_tanhf(z[2 * H + k]);
    const float cn = f * cp + i * g;
    const float o = sigmoid({go});
    c[k] = cn;
    h[k] = o * {act};
}}

/* One step of an LSTM layer; z is scratch of pad16(4H) floats */
static void {name}(float *restrict h, float *restrict c, const float *restrict x, int n_in,
                 int H, const float *restrict wih_t, {layer_args}) {{
    copy(z, b, pad16(4 * H));
    gemv_t(z, wih_t, x, n_in, pad16(4 * H));  /* z = W_ih x + b */
{rec}
    int k = 0;
    for (; k + 8 <= H; k += 8)
        for (int q = 0; q < 8; ++q) {name}_unit(h, c, z{call}, H, k + q);
    for (; k < H; ++k) {name}_unit(h, c, z{call}, H, k);
}}
"""


class _Writer:
    """Collects weights, scratch memory, kernels and the lines of ``NAME_step``."""

    def __init__(self, plan: ExportPlan, name: str):
        self.plan, self.name, self.P = plan, name, name.upper()
        self.arrays, self.body, self.kernels, self.work = [], [], set(), 0
        self._gates, self.lstm_kernels, self._sections = {}, {}, 0
        self._codes_written = False  # the image_codes arrays (see _codes)

    def need(self, *kernels: str) -> None:
        for k in kernels:
            self.kernels.add(k)
            self.need(*_NEEDS.get(k, ()))

    def lstm_kernel(self, core: Core) -> str:
        """The name of the step function of ``core``'s LSTM variant (written once)."""
        cell_rec = core.variant == "peephole_cell"
        peep = core.variant == "peephole"
        name = "lstm" + ("_peephole" if peep else "") + ("_cell" if cell_rec else "") + \
            ("_identity" if core.identity else "")
        self.lstm_kernels[name] = _lstm_kernel(name, peep, cell_rec, core.identity)
        self.need("copy", "gemv_t", "exp")
        return name

    def const(self, name: str, values, comment: str, ctype: str = "float") -> str:
        self.arrays.append(_array(ctype, name, values, comment))
        return name

    def scratch(self, n: int) -> str:
        """``s->work + offset`` of ``n`` fresh floats."""
        at = self.work
        self.work += int(n)
        return f"s->work + {at}"

    def gates(self, n: int, key: str = "z") -> str:
        """Scratch for a core's gates, shared by every core (they run one after another)."""
        if key not in self._gates:
            self._gates[key] = self.scratch(n)
        return self._gates[key]

    def section(self, title: str) -> None:
        """A numbered comment that opens the next part of ``NAME_step``."""
        self._sections += 1
        if self._sections > 1:
            self.line()
        self.line(f"/* {self._sections}. {title} */")

    def line(self, text: str = "") -> None:
        self.body.append(("    " + text) if text else "")

    def state(self, k: int, layer: int) -> str:
        return f"s->state[{k}][{layer}]"

    # ------------------------------------------------------------------ the step
    def checks(self) -> None:
        plan = self.plan
        self.section("refuse what Predictor.predict refuses; nothing is changed then")
        for p in plan.inputs:
            a, n = p.start, p.size
            if p.kind == "image" and plan.image_codes is not None:
                self.need("index")
                C = p.space.shape[-1]
                nv = self._codes()
                self.line(f"for (int j = 0; j < {n}; ++j)  /* image codes in range */")
                self.line(f"    if (!valid_index(obs[{a} + j], 0.0f, {nv}[j % {C}])) "
                          f"return {self.P}_BAD_OBSERVATION;")
            elif p.kind in ("box", "image"):
                if plan.norm_offset(p) is not None:  # the normaliser clips inf, not NaN
                    self.need("nonan")
                    self.line(f"if (!no_nan(obs + {a}, {n})) return {self.P}_BAD_OBSERVATION;")
                else:
                    self.need("finite")
                    self.line(f"if (!all_finite(obs + {a}, {n})) "
                              f"return {self.P}_BAD_OBSERVATION;")
            elif p.kind == "discrete":
                self.need("index")
                self.line(f"if (!valid_index(obs[{a}], {_f32(float(p.space.start))}, "
                          f"{int(p.space.n)})) return {self.P}_BAD_OBSERVATION;")
            elif p.kind == "multidiscrete":
                self.need("index")
                nvec, start = categories(p.space)
                lo = self.const(f"obs{a}_start", start, f"{_where(p)}: start of each entry")
                nv = self.const(f"obs{a}_n", nvec, f"{_where(p)}: values of each entry")
                self.line(f"for (int j = 0; j < {n}; ++j)")
                self.line(f"    if (!valid_index(obs[{a} + j], {lo}[j], (int){nv}[j])) "
                          f"return {self.P}_BAD_OBSERVATION;")
        if plan.mask is not None:
            self.need("anyset")
            for h in plan.heads:
                if h.mask is not None:
                    for off, n, _ in h.groups:
                        self.line(f"if (!any_set(obs + {plan.mask.start + h.mask.start + off}, "
                                  f"{n})) return {self.P}_MASK_FORBIDS_ALL;")

    def _codes(self) -> str:
        """The constant arrays of ``image_codes``: codes per channel (``image_codes``) and each
        channel's first one-hot channel (``image_code_offset``); returns the first's name."""
        if not self._codes_written:
            codes = np.asarray(self.plan.image_codes, dtype=np.int64)
            self.const("image_codes", codes, "codes per image channel (image_codes)", "int")
            self.const("image_code_offset", np.concatenate([[0], np.cumsum(codes)[:-1]]),
                       "the first one-hot channel of each image channel", "int")
            self._codes_written = True
        return "image_codes"

    def _scaled(self, value: str) -> str:
        """An image value as the policy encodes it (times 1/image_scale in double, as NumPy
        does)."""
        scale = self.plan.image_scale
        if scale is None:
            return value
        return f"(float)((double){value} * (1.0 / {_f64(scale)}))"

    def features(self) -> str:
        plan = self.plan
        feat = self.scratch(plan.feature_dim)
        self.section("encode the observation into the core's features")
        self.line(f"float *const feat = {feat};")
        if plan.normalize is not None:
            mean, std, clip = plan.normalize
            m = self.const("obs_mean", mean, "observation normaliser: mean", "double")
            sd = self.const("obs_std", std, "observation normaliser: sqrt(var + epsilon)",
                            "double")
        for p, f in plan.plain:
            a, n = p.start, p.size
            off = plan.norm_offset(p)
            if off is not None:
                at = f"{off} + j" if off else "j"
                self.line(f"for (int j = 0; j < {n}; ++j) {{  /* normalised in double */")
                self.line(f"    double v = ((double)obs[{a} + j] - {m}[{at}]) / {sd}[{at}];")
                self.line(f"    v = v < {_f64(-clip)} ? {_f64(-clip)} : v;")
                self.line(f"    feat[{f} + j] = (float)(v > {_f64(clip)} ? {_f64(clip)} : v);")
                self.line("}")
            elif p.kind == "box":
                self.line(f"copy(feat + {f}, obs + {a}, {n});")
                self.need("copy")
            elif p.kind == "image" and plan.image_codes is not None:
                C, width = p.space.shape[-1], int(sum(plan.image_codes))
                self._codes()
                self.line(f"for (int j = 0; j < {n // C * width}; ++j) feat[{f} + j] = 0.0f;")
                self.line(f"for (int q = 0; q < {n // C}; ++q)  /* pixel q: codes one-hot */")
                self.line(f"    for (int c = 0; c < {C}; ++c)")
                self.line(f"        feat[{f} + q * {width} + image_code_offset[c] + "
                          f"(int)obs[{a} + q * {C} + c]] = 1.0f;")
            elif p.kind == "image":
                self.line(f"for (int j = 0; j < {n}; ++j) "
                          f"feat[{f} + j] = {self._scaled(f'obs[{a} + j]')};")
            elif p.kind == "multibinary":
                self.line(f"for (int j = 0; j < {n}; ++j) "
                          f"feat[{f} + j] = obs[{a} + j] != 0.0f ? 1.0f : 0.0f;")
            else:  # one-hot blocks
                nvec, start = categories(p.space)
                width = int(nvec.sum())
                self.line(f"for (int j = 0; j < {width}; ++j) feat[{f} + j] = 0.0f;")
                if nvec.size == 1:
                    self.line(f"feat[{f} + (int)(obs[{a}] - {_f32(float(start[0]))})] = 1.0f;")
                else:
                    off = self.const(f"obs{a}_offset", np.concatenate([[0], np.cumsum(nvec)[:-1]]),
                                     f"{_where(p)}: first one-hot column of each entry")
                    self.line(f"for (int j = 0; j < {nvec.size}; ++j)")
                    self.line(f"    feat[{f} + (int){off}[j] + (int)(obs[{a} + j] - "
                              f"obs{a}_start[j])] = 1.0f;")
        for j, net in enumerate(plan.images):
            self.need("conv")
            Hh, W, C = net.shape
            x = self.scratch(Hh * W * C)
            a = net.part.start
            if plan.image_codes is not None:
                Cr = net.part.space.shape[-1]
                self._codes()
                self.line(f"{{  /* {_where(net.part)}: HWC codes -> one-hot CHW, then its "
                          f"conv net */")
                self.line(f"    float *const x = {x};")
                self.line(f"    for (int j = 0; j < {Hh * W * C}; ++j) x[j] = 0.0f;")
                self.line(f"    for (int y = 0; y < {Hh}; ++y)")
                self.line(f"        for (int xx = 0; xx < {W}; ++xx)")
                self.line(f"            for (int c = 0; c < {Cr}; ++c) {{")
                self.line(f"                int k = image_code_offset[c] + "
                          f"(int)obs[{a} + (y * {W} + xx) * {Cr} + c];")
                self.line(f"                x[(k * {Hh} + y) * {W} + xx] = 1.0f;")
                self.line("            }")
            else:
                how = ("as they are" if plan.image_scale is None
                       else f"/ {plan.image_scale:g}")
                self.line(f"{{  /* {_where(net.part)}: HWC values {how} -> CHW, then its "
                          f"conv net */")
                self.line(f"    float *const x = {x};")
                self.line(f"    for (int y = 0; y < {Hh}; ++y)")
                self.line(f"        for (int xx = 0; xx < {W}; ++xx)")
                self.line(f"            for (int c = 0; c < {C}; ++c)")
                value = self._scaled(f"obs[{a} + (y * {W} + xx) * {C} + c]")
                self.line(f"                x[(c * {Hh} + y) * {W} + xx] = {value};")
            src, (c_in, h_in, w_in) = "x", (C, Hh, W)
            shapes = net.output_shapes()
            for k, ((w, b, s), (o, ho, wo)) in enumerate(zip(net.convs, shapes)):
                last = k == len(net.convs) - 1
                dst = f"feat + {net.feature}" if last else self.scratch(o * ho * wo)
                wn = self.const(f"image{j}_conv{k}_w", w, f"image{j}.conv{k}.weight "
                                f"{tuple(w.shape)}")
                bn = self.const(f"image{j}_conv{k}_b", b, f"image{j}.conv{k}.bias")
                self.line(f"    conv_relu({dst}, {src}, {wn}, {bn}, {c_in}, {h_in}, {w_in}, "
                          f"{o}, {w.shape[2]}, {s}, {ho}, {wo});")
                src, (c_in, h_in, w_in) = dst, (o, ho, wo)
            self.line("}")
        return "feat"

    def encoder(self, x: str) -> str:
        plan = self.plan
        return self.mlp(x, plan.encoder, plan.encoder_activation, "encoder", "enc")

    def mlp(self, x: str, layers, activation: str, name: str, var: str) -> str:
        """Dense layers ``layers`` (``[(weight, bias), ...]``, parameters ``name.{k}.*``) on
        ``x``, each followed by ``activation``; returns the output's variable."""
        if not layers:
            return x
        self.need("dense")
        act = 1 if activation == "tanh" else 2
        self.section(f"{name} MLP ({activation})")
        for k, (w, b) in enumerate(layers):
            y = self.scratch(_pad16(w.shape[0]))
            wn = self.const(f"{var}{k}_wt", _padded_t(w), f"{name}.{k}.weight, transposed "
                            f"({w.shape[1]}, {w.shape[0]}), padded to {_pad16(w.shape[0])}")
            bn = self.const(f"{var}{k}_b", _padded(b), f"{name}.{k}.bias, padded")
            self.line(f"float *const {var}{k} = {y};")
            self.line(f"dense({var}{k}, {wn}, {bn}, {x}, {w.shape[1]}, {w.shape[0]}, {act});")
            x = f"{var}{k}"
        return x

    def core(self, core: Core, x: str, k0: int) -> str:
        """One step of ``core``; its state arrays start at ``k0``. Returns its output."""
        H = core.hidden_size
        kernel = "gru" if core.kind == "gru" else self.lstm_kernel(core)
        self.need(kernel if core.kind == "gru" else "copy")
        self.section(core.describe())
        G = 4 if core.kind == "lstm" else 3
        z = self.gates(_pad16(G * H))  # the critic core reuses the actor's gate memory
        u = self.gates(_pad16(3 * H), "u") if core.variant in ("peephole_cell", "gru") else None
        for layer, L in enumerate(core.layers):
            pre = f"{core.name}_l{layer}"
            D = L.input_size
            wih = self.const(f"{pre}_wih_t", _padded_t(L.w_ih),
                             f"{core.name}.weight_ih_l{layer}, transposed ({D}, {G * H}), "
                             f"padded to {_pad16(G * H)}")
            rec = "ch" if core.variant == "peephole_cell" else "hh"
            wrec = self.const(f"{pre}_wrec_t", _padded_t(L.w_rec),
                              f"{core.name}.weight_{rec}_l{layer}, transposed "
                              f"({H}, {L.w_rec.shape[0]}), padded to {_pad16(L.w_rec.shape[0])}")
            h, c = self.state(k0, layer), self.state(k0 + 1, layer)
            if core.kind == "gru":
                bi = self.const(f"{pre}_bih", _padded(L.b_ih),
                                f"{core.name}.bias_ih_l{layer}, padded")
                bh = self.const(f"{pre}_bhh", _padded(L.b_hh),
                                f"{core.name}.bias_hh_l{layer}, padded")
                self.line(f"gru({h}, {x}, {D}, {H}, {wih}, {wrec}, {bi}, {bh}, {z}, {u});")
            else:
                b = self.const(f"{pre}_b", _padded(np.asarray(L.b_ih, np.float64) +
                                               np.asarray(L.b_hh, np.float64)),
                               f"{core.name}.bias_ih_l{layer} + bias_hh_l{layer}, padded")
                extra = f"{z}, {u}" if core.variant == "peephole_cell" else z
                if L.peephole is not None:
                    extra = self.const(f"{pre}_peep", L.peephole,
                                       f"{core.name}.peephole_l{layer} (p_i, p_f, p_o)") + \
                        ", " + extra
                self.line(f"{kernel}({h}, {c}, {x}, {D}, {H}, {wih}, {wrec}, {b}, {extra});")
            x = h
        return x

    def heads(self, y: str, yv: str) -> None:
        plan = self.plan
        w, b = plan.action_layer
        self.need("dense")
        z = self.scratch(_pad16(plan.n_z))
        wn = self.const("action_wt", _padded_t(w), f"action.weight, transposed "
                        f"({w.shape[1]}, {w.shape[0]}), padded to {_pad16(w.shape[0])}")
        bn = self.const("action_b", _padded(b), "action.bias, padded")
        self.section("the action layer and the mode of each head")
        self.line(f"float *const z = {z};")
        self.line(f"dense(z, {wn}, {bn}, {y}, {w.shape[1]}, {w.shape[0]}, 0);")
        for j, h in enumerate(plan.heads):
            o, zs = h.part.start, h.z.start
            self.line(f"/* {h.describe()} */")
            if h.kind in ("discrete", "multidiscrete"):
                self.need("argmax")
                for g, (off, n, start) in enumerate(h.groups):
                    allowed = "0" if h.mask is None else \
                        f"obs + {plan.mask.start + h.mask.start + off}"
                    shift = (f" + {int(start)}" if start > 0 else
                             f" - {-int(start)}" if start else "")
                    self.line(f"action[{o + g}] = (float)(argmax(z + {zs + off}, {n}, "
                              f"{allowed}){shift});")
            elif h.kind == "multibinary":
                self.line(f"for (int j = 0; j < {h.part.size}; ++j) "
                          f"action[{o} + j] = z[{zs} + j] > 0.0f ? 1.0f : 0.0f;")
            else:
                lo32 = h.low.astype(np.float32)
                hi32 = h.high.astype(np.float32)
                if np.isinf(lo32).all() and np.isinf(hi32).all():
                    self.line(f"copy(action + {o}, z + {zs}, {h.part.size});")
                    self.need("copy")
                    continue
                lo = self.const(f"action{j}_low", lo32, f"{_where(h.part, 'action')}: low")
                hi = self.const(f"action{j}_high", hi32, f"{_where(h.part, 'action')}: high")
                self.line(f"for (int j = 0; j < {h.part.size}; ++j) {{")
                self.line(f"    const float v = z[{zs} + j] < {lo}[j] ? {lo}[j] : z[{zs} + j];")
                self.line(f"    action[{o} + j] = v > {hi}[j] ? {hi}[j] : v;")
                self.line("}")
        if plan.value_layer is not None:
            w, b = plan.value_layer
            wn = self.const("value_w", w, "value.weight")
            self.line("/* the value head */")
            self.line(f"float v = {_f32(float(np.float32(b[0])))};")
            self.line(f"for (int j = 0; j < {w.shape[1]}; ++j) v += value_w[j] * {yv}[j];")
            self.line("s->value = v;")

    def step(self) -> None:
        plan = self.plan
        self.checks()
        x = self.encoder(self.features())
        outs, k = [], 0
        for core in plan.cores:
            outs.append(self.core(core, x, k))
            k += len(core.state_names)
        y = self.mlp(outs[0], plan.actor_head, plan.head_activation, "actor_head", "pi")
        yv = self.mlp(outs[plan.value_core], plan.critic_head, plan.head_activation,
                      "critic_head", "vf")
        self.heads(y, yv)


def _where(p, root: str = "obs") -> str:
    return f"{root}[{p.start}:{p.stop}] {path_name(root, p.path)}"


def _comment(lines: list[str]) -> str:
    return "\n".join(" * " + ln.replace("*/", "* /") for ln in lines)


def _render(plan: ExportPlan, name: str) -> tuple[str, str]:
    w = _Writer(plan, name)
    w.step()
    P = w.P
    K, L, H = plan.state_shape
    about = [f"{name}: generated by rlstm {__version__} (rlstm.export.to_c) from {plan.source}.",
             "Do not edit; export again instead. C99, float32, only <math.h>, no heap.", ""]
    about += plan.describe()
    state_macros = "\n".join(f"#define {P}_STATE_{c.upper()}_{s.upper()} {k}  "
                             f"/* {c}.{s}: s.state[{k}] */"
                             for k, (c, s) in enumerate(plan.state_names))
    value_field = ("    float value;  /* the value of the last observation stepped */"
                   if plan.include_value else "    /* exported without the value head */")
    header = f"""/*
{_comment(about)}
 *
 * Use: one {name}_state per env; {name}_reset() at each episode start; {name}_step() once per
 * env step. It returns {P}_OK, or refuses an observation that Predictor.predict refuses
 * ({P}_BAD_OBSERVATION: NaN, inf, a discrete value outside its space;
 * {P}_MASK_FORBIDS_ALL: the mask forbids every action of a head) and then changes nothing.
 */
#ifndef {P}_H_
#define {P}_H_

#ifdef __cplusplus
extern "C" {{
#endif

#define {P}_OBS_SIZE {plan.n_obs}        /* floats in obs (layout above) */
#define {P}_ACTION_SIZE {plan.n_action}     /* floats in action (layout above) */
#define {P}_NUM_STATES {K}       /* recurrent state arrays */
#define {P}_NUM_LAYERS {L}
#define {P}_HIDDEN_SIZE {H}
#define {P}_HAS_VALUE {int(plan.include_value)}        /* 1: {name}_step sets s.value */
#define {P}_WORK_SIZE {max(w.work, 1)}
{state_macros}

#define {P}_OK 0
#define {P}_BAD_OBSERVATION 1
#define {P}_MASK_FORBIDS_ALL 2

typedef struct {{
    float state[{P}_NUM_STATES][{P}_NUM_LAYERS][{P}_HIDDEN_SIZE];  /* the recurrent state */
{value_field}
    float work[{P}_WORK_SIZE];  /* scratch memory of one step */
}} {name}_state;

/* Zero the recurrent state: call at every episode start. */
void {name}_reset({name}_state *s);

/* One step: obs[{P}_OBS_SIZE] -> action[{P}_ACTION_SIZE]; advances s. */
int {name}_step({name}_state *s, const float *obs, float *action);

#ifdef __cplusplus
}}
#endif

#endif /* {P}_H_ */
"""
    kernels = "\n".join([_KERNELS[k] for k in _KERNELS if k in w.kernels]
                         + list(w.lstm_kernels.values()))
    body = "\n".join(w.body)
    source = f"""/* {name}.c: generated by rlstm {__version__} (rlstm.export.to_c)
 * from {plan.source}.
 * The network, spaces and flat layouts are described in {name}.h. */
#include <math.h>

#include "{name}.h"

/* ---------------------------------------------------------------- weights */
{chr(10).join(w.arrays)}
/* ---------------------------------------------------------------- kernels */
{kernels}
/* ---------------------------------------------------------------- API */
void {name}_reset({name}_state *s) {{
    for (int k = 0; k < {P}_NUM_STATES; ++k)
        for (int l = 0; l < {P}_NUM_LAYERS; ++l)
            for (int j = 0; j < {P}_HIDDEN_SIZE; ++j) s->state[k][l][j] = 0.0f;
{"    s->value = 0.0f;" if plan.include_value else ""}
}}

int {name}_step({name}_state *s, const float *obs, float *action) {{
{body}
    return {P}_OK;
}}
"""
    return header, source


def to_c(source, out, *, name: str | None = None, include_value: bool = True
         ) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the policy of ``source`` as C99 source: ``NAME.h`` and ``NAME.c``.

    Args:
        source: a model file, an ``LSTMPolicy``, a ``Predictor`` or a trainer (see
            :func:`rlstm.export.as_predictor`).
        out: a folder (existing, or ending in ``/``): the files are ``out/NAME.h`` and
            ``out/NAME.c``; or a path prefix ``folder/NAME`` (``folder/NAME.c`` also works):
            NAME is taken from it. Missing folders are created.
        name: the C prefix of every public name (``NAME_step``, ``NAME_state``, ``NAME_OK``
            in upper case); default ``"policy"``, or the prefix's file name. A C identifier.
        include_value: also compute the value (``s.value``) and run a separate critic core;
            False drops both (smaller and faster; the state holds the actor core only).

    Returns ``(header path, source path)``. See :mod:`rlstm.export.c_writer` for the API.
    """
    folder, name = _c_paths(out, name)
    plan = ExportPlan(source, include_value=include_value)
    header, text = _render(plan, name)
    h_path, c_path = folder / f"{name}.h", folder / f"{name}.c"
    write_atomic(h_path, header.encode())
    write_atomic(c_path, text.encode())
    return h_path, c_path
