"""LSTMPolicy: every space combination, act/evaluate agreement, gradients, masks, seeding."""
import numpy as np
import pytest
from gymnasium import spaces

import rlstm

from rlstm.policy import LSTMPolicy
from rlstm.policy.heads import unpack

BOX = spaces.Box(-1, 1, (3,), np.float32)
OBS_SPACES = {
    "box": BOX,
    "box2d": spaces.Box(-2, 2, (2, 2), np.float32),
    "discrete": spaces.Discrete(4, start=1),
    "multidiscrete": spaces.MultiDiscrete([3, 2]),
    "multibinary": spaces.MultiBinary(3),
    "tuple": spaces.Tuple((BOX, spaces.Discrete(3))),
    "dict_of_tuple": spaces.Dict({"pos": BOX, "inv": spaces.Tuple((
        spaces.Discrete(2), spaces.MultiBinary(2))),
        "deep": spaces.Dict({"k": spaces.Discrete(3)})}),
    "image": spaces.Box(0, 255, (4, 4, 1), np.uint8),
    "image_dict": spaces.Dict({"img": spaces.Box(0, 255, (6, 5, 2), np.uint8), "vec": BOX}),
}
ACT_SPACES = {
    "discrete": spaces.Discrete(3),
    "discrete_start": spaces.Discrete(3, start=-1),
    "multidiscrete": spaces.MultiDiscrete([3, 2, 4]),
    "multibinary": spaces.MultiBinary(3),
    "box": spaces.Box(-1, 1, (2,), np.float32),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32))),
    "dict_of_tuple": spaces.Dict({"move": spaces.Tuple((spaces.Discrete(2),
                                                        spaces.MultiBinary(2))),
                                  "aim": spaces.Box(-1, 1, (1, 2), np.float32),
                                  "item": spaces.MultiDiscrete([2, 3])}),
}


def batch_sample(space, lead, rng):
    """A batch with leading shape ``lead`` of samples from ``space`` (structure kept)."""
    if isinstance(space, spaces.Tuple):
        return tuple(batch_sample(s, lead, rng) for s in space.spaces)
    if isinstance(space, spaces.Dict):
        return {k: batch_sample(s, lead, rng) for k, s in space.spaces.items()}
    n = int(np.prod(lead))
    space.seed(int(rng.integers(2 ** 31)))
    return np.stack([space.sample() for _ in range(n)]).reshape(tuple(lead) + space.shape)


def take_step(x, t):
    if isinstance(x, tuple):
        return tuple(take_step(v, t) for v in x)
    if isinstance(x, dict):
        return {k: take_step(v, t) for k, v in x.items()}
    return x[t]


def stack(xs):
    if isinstance(xs[0], tuple):
        return tuple(stack([x[i] for x in xs]) for i in range(len(xs[0])))
    if isinstance(xs[0], dict):
        return {k: stack([x[k] for x in xs]) for k in xs[0]}
    return np.stack(xs)


def rollout(policy, obs_space, T, B, rng, masks=None):
    """Act for T steps; return what evaluate needs plus act's log-probs and values."""
    obs = batch_sample(obs_space, (T, B), rng)
    es = rng.random((T, B)) < 0.3
    es[0] = True
    state0 = policy.initial_state(B)
    state = state0
    acts, lps, vals = [], [], []
    for t in range(T):
        m = None if masks is None else masks[t]
        a, v, lp, state = policy.act(take_step(obs, t), state, es[t], rng=rng, action_mask=m)
        acts.append(a)
        lps.append(lp)
        vals.append(v)
    return obs, stack(acts), es, state0, np.stack(lps), np.stack(vals)


COMBOS = ([(o, "discrete") for o in OBS_SPACES] + [("box", a) for a in ACT_SPACES]
          + [("dict_of_tuple", "dict_of_tuple"), ("tuple", "tuple")])


@pytest.mark.parametrize("obs_name,act_name,sde", [c + (False,) for c in COMBOS] + [
    ("box", "box", True), ("dict_of_tuple", "dict_of_tuple", True), ("box", "tuple", True)])
@pytest.mark.parametrize("head_hidden", [(), (6, 5)])
def test_act_and_evaluate_agree(obs_name, act_name, sde, head_hidden):
    rng = np.random.default_rng(0)
    obs_space, act_space = OBS_SPACES[obs_name], ACT_SPACES[act_name]
    p = LSTMPolicy(obs_space, act_space, hidden_size=8, seed=1, dtype=np.float64,
                   action_init_scale=1.0, use_sde=sde, head_hidden=head_hidden)
    obs, acts, es, s0, lp_act, v_act = rollout(p, obs_space, 6, 3, rng)
    for (leaf, _), head in zip(unpack(act_space, acts), p.heads):
        assert leaf.shape[:2] == (6, 3)
        if not isinstance(head.space, spaces.Box):
            assert all(head.space.contains(x) for x in leaf.reshape((18,) + head.space.shape))
    lp, ent, v, _ = p.evaluate(obs, acts, s0, es)
    assert lp.shape == ent.shape == v.shape == (6, 3)
    np.testing.assert_allclose(lp, lp_act, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(v, v_act, rtol=1e-10, atol=1e-10)
    assert np.all(ent > 0) or act_name == "box"
    assert np.all(lp < 0) or act_name in ("box", "tuple", "dict_of_tuple")


@pytest.mark.parametrize("obs_name,act_name,kw", [
    ("box", "discrete", {}),
    ("box", "box", {}),
    ("box", "multibinary", {}),
    ("box", "multidiscrete", {}),
    ("dict_of_tuple", "dict_of_tuple", {"mlp_hidden": (5,)}),
    ("tuple", "tuple", {"shared_core": False, "num_layers": 2}),
    ("multidiscrete", "discrete", {"core_kwargs": {"variant": "peephole"}}),
    ("image", "discrete", {}),
    ("image_dict", "box", {"mlp_hidden": (5,)}),
    ("image", "multibinary", {"image_encoder": "flatten"}),
    ("box", "box", {"use_sde": True, "sde_learn_features": True}),
    ("tuple", "dict_of_tuple", {"use_sde": True, "sde_learn_features": True,
                                "shared_core": False, "num_layers": 2}),
    ("box", "discrete", {"head_hidden": (5, 3)}),
    ("image_dict", "box", {"head_hidden": (5,), "mlp_hidden": (6,), "shared_core": False}),
    ("box", "tuple", {"head_hidden": (5,), "use_sde": True, "sde_learn_features": True}),
])
def test_backward_matches_central_differences(obs_name, act_name, kw):
    rng = np.random.default_rng(2)
    obs_space, act_space = OBS_SPACES[obs_name], ACT_SPACES[act_name]
    p = LSTMPolicy(obs_space, act_space, hidden_size=4, seed=3, dtype=np.float64,
                   action_init_scale=1.0, log_std_init=-0.3, **kw)
    T, B = 5, 2
    obs, acts, es, s0, _, _ = rollout(p, obs_space, T, B, rng)
    es[2, 1] = True
    s0 = tuple(rng.standard_normal(s.shape) * 0.5 for s in s0)
    a, b, c = rng.standard_normal((3, T, B))

    def objective():
        lp, ent, v, _ = p.evaluate(obs, acts, s0, es)
        return np.sum(a * lp + b * ent + c * v)

    lp, ent, v, cache = p.evaluate(obs, acts, s0, es)
    p.zero_grad()
    p.backward(a, b, c, cache)
    analytic = p.flat_grads.copy()
    numeric = np.empty_like(analytic)
    eps = 1e-6
    for i in range(p.flat_params.size):
        old = p.flat_params[i]
        p.flat_params[i] = old + eps
        fp = objective()
        p.flat_params[i] = old - eps
        fm = objective()
        p.flat_params[i] = old
        numeric[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    for name, g in p.grads.items():  # every parameter block takes part
        assert np.abs(g).max() > 1e-6, name


def test_backward_accumulates_and_none_terms():
    rng = np.random.default_rng(0)
    p = LSTMPolicy(BOX, ACT_SPACES["discrete"], hidden_size=4, seed=0, dtype=np.float64)
    obs, acts, es, s0, _, _ = rollout(p, BOX, 4, 2, rng)
    *_, cache = p.evaluate(obs, acts, s0, es)
    ones = np.ones((4, 2))
    p.backward(ones, None, None, cache)
    g1 = p.flat_grads.copy()
    p.backward(ones, None, None, cache)
    np.testing.assert_allclose(p.flat_grads, 2 * g1)
    assert p.grads["value.weight"].any() == False  # noqa: E712  (no value term)


def test_params_are_views_into_one_vector():
    p = LSTMPolicy(OBS_SPACES["dict_of_tuple"], ACT_SPACES["dict_of_tuple"], hidden_size=6,
                   mlp_hidden=(7,), shared_core=False, seed=0)
    names = list(p.params)
    assert names[0] == "encoder.0.weight" and "core.weight_hh_l0" in names
    assert "critic_core.weight_ih_l0" in names and names[-2:] == ["value.weight", "value.bias"]
    assert sum(v.size for v in p.params.values()) == p.flat_params.size
    p.flat_params[...] = 0.5
    assert np.all(p.core.params["weight_hh_l0"] == 0.5)
    assert np.shares_memory(p.core.flat_params, p.flat_params)
    assert p.params["action.weight"].shape == (p.n_action, 6)
    assert p.params["log_std"].shape == (2,)


@pytest.mark.parametrize("act_name", ["discrete", "multidiscrete", "multibinary", "box",
                                      "dict_of_tuple"])
def test_sampling_reproducible_from_rng(act_name):
    p = LSTMPolicy(BOX, ACT_SPACES[act_name], hidden_size=8, seed=0, action_init_scale=1.0)
    obs = np.random.default_rng(1).uniform(-1, 1, (16, 3)).astype(np.float32)
    st = p.initial_state(16)
    es = np.ones(16, bool)
    r1 = p.act(obs, st, es, rng=np.random.default_rng(7))
    r2 = p.act(obs, st, es, rng=np.random.default_rng(7))
    r3 = p.act(obs, st, es, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(r1[2], r2[2])
    assert not np.array_equal(r1[2], r3[2])
    q = LSTMPolicy(BOX, ACT_SPACES[act_name], hidden_size=8, seed=0, action_init_scale=1.0)
    p2 = LSTMPolicy(BOX, ACT_SPACES[act_name], hidden_size=8, seed=0, action_init_scale=1.0)
    np.testing.assert_array_equal(q.act(obs, st, es)[2], p2.act(obs, st, es)[2])


def test_deterministic_actions():
    p = LSTMPolicy(BOX, ACT_SPACES["tuple"], hidden_size=8, seed=0, action_init_scale=1.0)
    obs = np.zeros((2, 3), np.float32)
    st = p.initial_state(2)
    (d, box), *_ = p.act(obs, st, None, deterministic=True)
    z = p.action_net(p.core.step(obs, None)[0])
    np.testing.assert_array_equal(d, z[:, :3].argmax(axis=1))
    np.testing.assert_allclose(box, z[:, 3:], rtol=1e-6)


def test_episode_start_resets_state():
    p = LSTMPolicy(BOX, ACT_SPACES["discrete"], hidden_size=8, seed=0)
    obs = np.ones((2, 3), np.float32)
    st = tuple(np.full_like(s, 3.0) for s in p.initial_state(2))
    _, v_reset, _, s_new = p.act(obs, st, np.array([True, False]))
    _, v_zero, _, s_zero = p.act(obs, p.initial_state(2), np.array([False, False]))
    assert v_reset[0] == v_zero[0] and v_reset[1] != v_zero[1]
    np.testing.assert_array_equal(s_new[0][:, 0], s_zero[0][:, 0])


# ---------------------------------------------------------------------------- masks
MASKED_OBS = spaces.Dict({"obs": BOX, "action_mask": spaces.MultiBinary(5)})


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    p = LSTMPolicy(OBS_SPACES["dict_of_tuple"], ACT_SPACES["discrete"], hidden_size=4, seed=0)
    good = batch_sample(OBS_SPACES["dict_of_tuple"], (2,), np.random.default_rng(0))
    with pytest.raises(TypeError, match="dict"):
        p.act([1, 2], None, None)
    bad = dict(good)
    del bad["pos"]
    with pytest.raises(ValueError, match="missing the key 'pos'"):
        p.act(bad, None, None)
    bad = dict(good, deep={"k": np.array([5, 0])})
    with pytest.raises(ValueError, match="outside the space"):
        p.act(bad, None, None)
    bad = dict(good, pos=np.full((2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        p.act(bad, None, None)
    with pytest.raises(ValueError, match="episode_start"):
        p.act(good, None, np.zeros(3, bool))
    with pytest.raises(TypeError, match="tuple of 2 arrays"):
        p.act(good, np.zeros((1, 2, 4)), None)
    with pytest.raises(ValueError, match="shape"):
        p.act(good, p.initial_state(3), None)
    q = LSTMPolicy(BOX, ACT_SPACES["discrete"], hidden_size=4, seed=0)
    obs = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match="outside Discrete"):
        q.evaluate(obs, np.full((2, 2), 3), None, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        q.evaluate(obs, np.zeros((2, 3), int), None, np.zeros((2, 2), bool))
    *_, cache = q.evaluate(obs, np.zeros((2, 2), int), None, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="dlog_probs"):
        q.backward(np.ones(3), None, None, cache)
    with pytest.raises(ValueError, match="evaluate"):
        p.backward(None, None, None, cache)
    with pytest.raises(TypeError, match="observation_space"):
        LSTMPolicy("Box", ACT_SPACES["discrete"])
    with pytest.raises(TypeError, match="action_space"):
        LSTMPolicy(BOX, spaces.Text(4))
    with pytest.raises(ValueError, match="gru|core"):
        LSTMPolicy(BOX, ACT_SPACES["discrete"], core="transformer")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMPolicy(BOX, ACT_SPACES["discrete"], hidden_size=0)


def test_float32_policy_runs_and_matches_float64():
    rng = np.random.default_rng(0)
    p64 = LSTMPolicy(BOX, ACT_SPACES["tuple"], hidden_size=8, seed=0, dtype=np.float64)
    p32 = LSTMPolicy(BOX, ACT_SPACES["tuple"], hidden_size=8, seed=0, dtype=np.float32)
    np.testing.assert_allclose(p32.flat_params, p64.flat_params, rtol=1e-6)
    obs, acts, es, s0, lp_act, _ = rollout(p32, BOX, 5, 3, rng)
    lp32, ent32, v32, c = p32.evaluate(obs, acts, s0, es)
    lp64, ent64, v64, _ = p64.evaluate(obs, (acts[0], acts[1].astype(np.float64)), None, es)
    assert lp32.dtype == np.float32 and v32.dtype == np.float32
    np.testing.assert_allclose(lp32, lp64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lp32, lp_act, rtol=1e-4, atol=1e-4)
    p32.backward(np.ones((5, 3)), np.ones((5, 3)), np.ones((5, 3)), c)
    assert p32.flat_grads.dtype == np.float32 and np.isfinite(p32.flat_grads).all()


class ElmanRNN(rlstm.Module):
    """A minimal recurrent layer whose state is one array (like rlstm.GRU): h = tanh(...)."""

    def __init__(self, input_size, hidden_size, num_layers=1, *, dtype=np.float32, seed=None):
        assert num_layers == 1
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, 1
        self._allocate([("weight_ih_l0", (hidden_size, input_size)),
                        ("weight_hh_l0", (hidden_size, hidden_size)),
                        ("bias_l0", (hidden_size,))], dtype)
        self.flat_params[...] = np.random.default_rng(seed).uniform(-0.5, 0.5,
                                                                     self.flat_params.size)

    def initial_state(self, B):
        return np.zeros((1, B, self.hidden_size), self.dtype)

    def step(self, x, h):
        h = self.initial_state(x.shape[0]) if h is None else h
        p = self.params
        hn = np.tanh(x @ p["weight_ih_l0"].T + h[0] @ p["weight_hh_l0"].T + p["bias_l0"])
        return hn, hn[None]

    def forward(self, x, h=None, resets=None):
        T, B, _ = x.shape
        h = self.initial_state(B)[0] if h is None else h[0]
        hs, hprev = [], []
        for t in range(T):  # a test double: the loop is fine here
            if resets is not None:
                h = h * (1 - resets[t][:, None])
            hprev.append(h)
            h = self.step(x[t], h[None])[0]
            hs.append(h)
        y = np.stack(hs)
        return y, y[-1][None], (x, y, np.stack(hprev), resets)

    def backward(self, dy, cache, dstate=None):
        x, y, hprev, resets = cache
        p, g = self.params, self.grads
        dx = np.zeros_like(x)
        dh = np.zeros_like(y[0])
        for t in range(x.shape[0] - 1, -1, -1):
            da = (dy[t] + dh) * (1 - y[t] ** 2)
            g["weight_ih_l0"] += da.T @ x[t]
            g["weight_hh_l0"] += da.T @ hprev[t]
            g["bias_l0"] += da.sum(0)
            dx[t] = da @ p["weight_ih_l0"]
            dh = da @ p["weight_hh_l0"]
            if resets is not None:
                dh = dh * (1 - resets[t][:, None])
        return dx, dh[None]


@pytest.mark.parametrize("shared", [True, False])
def test_custom_core_with_single_array_state(shared):
    rng = np.random.default_rng(0)
    p = LSTMPolicy(BOX, ACT_SPACES["tuple"], hidden_size=4, seed=0, dtype=np.float64,
                   core=ElmanRNN, shared_core=shared, action_init_scale=1.0)
    st = p.initial_state(3)
    assert len(st) == (1 if shared else 2) and st[0].shape == (1, 3, 4)
    assert "core.weight_hh_l0" in p.params and p.core_type == "ElmanRNN"
    obs, acts, es, s0, lp_act, v_act = rollout(p, BOX, 4, 3, rng)
    lp, ent, v, cache = p.evaluate(obs, acts, s0, es)
    np.testing.assert_allclose(lp, lp_act, rtol=1e-10)
    np.testing.assert_allclose(v, v_act, rtol=1e-10)
    a, b, c = rng.standard_normal((3, 4, 3))
    p.zero_grad()
    p.backward(a, b, c, cache)
    i = p.flat_params.size // 3  # a weight of the core: spot-check by central difference
    for i in (1, i, p.flat_params.size - 1):
        old = p.flat_params[i]
        f = []
        for d in (1e-6, -1e-6):
            p.flat_params[i] = old + d
            lp, ent, v, _ = p.evaluate(obs, acts, s0, es)
            f.append(np.sum(a * lp + b * ent + c * v))
        p.flat_params[i] = old
        assert p.flat_grads[i] == pytest.approx((f[0] - f[1]) / 2e-6, rel=1e-5, abs=1e-8)


def test_gru_core_name_is_accepted_or_explained():
    if hasattr(rlstm, "GRU"):
        p = LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=4, core="gru", seed=0)
        assert len(p.initial_state(2)) == 1
    else:
        with pytest.raises(ValueError, match="rlstm.GRU"):
            LSTMPolicy(BOX, spaces.Discrete(2), core="gru")


def test_act_on_a_gymnasium_vector_env():
    import gymnasium as gym
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4)
    p = LSTMPolicy(envs.single_observation_space, envs.single_action_space, hidden_size=8,
                   seed=0)
    obs, _ = envs.reset(seed=0)
    state, start = p.initial_state(4), np.ones(4, bool)
    for _ in range(20):
        action, value, logp, state = p.act(obs, state, start, rng=np.random.default_rng(0))
        obs, reward, term, trunc, _ = envs.step(action)
        start = term | trunc
    assert action.shape == (4,) and value.shape == logp.shape == (4,)
    envs.close()


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("head_hidden", [(), (4,)])
def test_value_matches_act(shared, head_hidden):
    p = LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=8, seed=0, shared_core=shared,
                   head_hidden=head_hidden)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    st = tuple(np.random.default_rng(1).standard_normal(s.shape).astype(np.float32)
               for s in p.initial_state(5))
    es = np.array([True, False, False, True, False])
    _, v, _, _ = p.act(obs, st, es)
    np.testing.assert_array_equal(p.value(obs, st, es), v)


def test_garbage_input_raises_type_or_value_error():
    from hypothesis import given, settings, strategies as st
    p = LSTMPolicy(OBS_SPACES["dict_of_tuple"], ACT_SPACES["dict_of_tuple"], hidden_size=4,
                   seed=0)
    leaf = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3),
                     st.lists(st.floats(allow_nan=True), max_size=4),
                     st.builds(np.zeros, st.tuples(st.integers(0, 3), st.integers(0, 3))),
                     st.builds(lambda n: np.array(["a"] * n), st.integers(0, 3)))
    junk = st.recursive(leaf, lambda c: st.one_of(
        st.lists(c, max_size=3).map(tuple), st.dictionaries(st.sampled_from(
            ["pos", "inv", "deep", "k", "action_mask"]), c, max_size=4)), max_leaves=8)

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(junk, junk)
    def check(obs, actions):
        for call in (lambda: p.act(obs, None, None),
                     lambda: p.evaluate(obs, actions, None, np.zeros((1, 2), bool))):
            try:
                call()
            except (TypeError, ValueError):
                pass
    check()


def test_single_env_fast_path_samples_the_same_distribution():
    p = LSTMPolicy(BOX, spaces.Discrete(3, start=2), hidden_size=4, seed=0,
                   action_init_scale=0.0, dtype=np.float64)
    p.params["action.bias"][...] = [0.5, -0.5, 1.0]
    probs = np.exp([0.5, -0.5, 1.0]) / np.exp([0.5, -0.5, 1.0]).sum()
    rng = np.random.default_rng(0)
    obs = np.zeros((1, 3))
    n = 6000
    acts = np.empty(n, int)
    for i in range(n):
        a, _, lp, _ = p.act(obs, None, None, rng=rng)
        assert a.shape == (1,) and a.dtype == np.int64 and lp.shape == (1,)
        assert lp[0] == pytest.approx(np.log(probs[a[0] - 2]), rel=1e-12)
        acts[i] = a[0]
    freq = np.bincount(acts - 2, minlength=3) / n
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / n)), freq
    rollout_obs, a_seq, es, s0, lp_act, _ = rollout(p, BOX, 7, 1, np.random.default_rng(1))
    np.testing.assert_allclose(p.evaluate(rollout_obs, a_seq, s0, es)[0], lp_act, rtol=1e-12)


def test_policy_gradient_learns_a_masked_contextual_bandit():
    """act -> reward -> evaluate -> backward -> Adam: the whole path learns (signs, masks)."""
    from rlstm.optim import Adam
    obs_space = spaces.Dict({"ctx": spaces.Discrete(3), "action_mask": spaces.MultiBinary(4)})
    p = LSTMPolicy(obs_space, spaces.Discrete(4), hidden_size=8, seed=0, dtype=np.float64)
    opt = Adam(p, lr=0.05)
    rng = np.random.default_rng(0)
    B = 64
    mask = np.ones((B, 4), bool)
    mask[:, 3] = False  # action 3 would pay 2 but is never allowed
    for _ in range(60):
        ctx = rng.integers(0, 3, B)
        obs = {"ctx": ctx, "action_mask": mask}
        a, _, _, _ = p.act(obs, None, np.ones(B, bool), rng=rng)
        assert not (a == 3).any()
        reward = (a == ctx).astype(float)
        lp, ent, v, cache = p.evaluate({k: x[None] for k, x in obs.items()}, a[None], None,
                                       np.ones((1, B), bool))
        adv = reward - v[0]
        p.zero_grad()
        # minimise -adv * logp + 0.5 * (v - r)^2
        p.backward(-(adv / B)[None], None, ((v[0] - reward) / B)[None], cache)
        opt.step()
    ctx = np.arange(3).repeat(10)
    a = p.act({"ctx": ctx, "action_mask": np.ones((30, 4), bool) * [1, 1, 1, 0]}, None, None,
              deterministic=True)[0]
    assert (a == ctx).all()
    values = p.value({"ctx": ctx, "action_mask": np.ones((30, 4), bool)}, None)
    assert np.all(values > 0.5)


def test_act_advances_the_core_exactly_like_lstm_step():
    """act() runs the core through LSTM.step (the compiled rollout path), state for state."""
    p = LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=8, num_layers=2, seed=0,
                   core_kwargs={"variant": "peephole"})
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((3,) + BOX.shape).astype(np.float32)
    state = p.initial_state(3)
    state = tuple(s + 0.3 for s in state)
    _, _, _, new_state = p.act(obs, state, np.zeros(3, bool), rng=np.random.default_rng(1))
    x = p.inputs.encode(obs, (3,), "obs")
    if p.encoder is not None:
        x = p.encoder.forward(x)[0]
    _, (h, c) = p.core.step(x, state)
    np.testing.assert_array_equal(new_state[0], h)
    np.testing.assert_array_equal(new_state[1], c)


def test_masked_actions_never_sampled_and_entropy_over_valid():
    p = LSTMPolicy(MASKED_OBS, spaces.Discrete(5), hidden_size=8, seed=0, action_init_scale=0.0)
    B = 4000
    mask = np.zeros((B, 5), bool)
    mask[:, [1, 3]] = True
    mask[::2, 4] = True
    obs = {"obs": np.zeros((B, 3), np.float32), "action_mask": mask}
    a, _, lp, _ = p.act(obs, p.initial_state(B), None, rng=np.random.default_rng(0))
    assert mask[np.arange(B), a].all()
    # uniform logits: p = 1/3 or 1/2 over the allowed actions
    np.testing.assert_allclose(lp[::2], np.log(1 / 3), rtol=1e-5)
    np.testing.assert_allclose(lp[1::2], np.log(1 / 2), rtol=1e-5)
    counts = np.bincount(a[1::2], minlength=5)
    assert counts[0] == counts[2] == counts[4] == 0 and abs(counts[1] - 1000) < 120
    lp_e, ent, _, _ = p.evaluate({k: v[None] for k, v in obs.items()}, a[None],
                                 p.initial_state(B), np.ones((1, B), bool))
    np.testing.assert_allclose(ent[0, ::2], np.log(3), rtol=1e-5)
    np.testing.assert_allclose(ent[0, 1::2], np.log(2), rtol=1e-5)
    np.testing.assert_allclose(lp_e[0], lp, rtol=1e-6)
    det = p.act(obs, p.initial_state(B), None, deterministic=True)[0]
    assert mask[np.arange(B), det].all()


def test_masked_logits_get_zero_gradient_and_mask_argument():
    rng = np.random.default_rng(0)
    act = spaces.Tuple((spaces.Discrete(3), spaces.MultiDiscrete([2, 3]), BOX))
    p = LSTMPolicy(BOX, act, hidden_size=4, seed=0, dtype=np.float64, action_init_scale=1.0)
    T, B = 3, 4
    masks = rng.random((T, B, 8)) < 0.6
    masks[..., [0, 3, 5]] = True  # one allowed action per categorical
    obs, acts, es, s0, lp_act, _ = rollout(p, BOX, T, B, rng, masks=masks)
    for part, (lo, hi) in ((acts[0], (0, 3)),):
        assert np.take_along_axis(masks[..., lo:hi], part[..., None], -1).all()
    lp, ent, v, cache = p.evaluate(obs, acts, s0, es, action_masks=masks)
    np.testing.assert_allclose(lp, lp_act, rtol=1e-10)
    # gradient w.r.t. logits: recover it through the action layer on a one-row problem
    z_grads = []
    for h, c, (zs, ms, _) in zip(p.heads, cache.head_caches, p.head_slices):
        dz, _ = h.backward(np.ones(T * B), np.ones(T * B), c)
        if h.n_mask:
            assert np.all(dz[~masks.reshape(T * B, -1)[:, ms]] == 0)
            z_grads.append(dz)
    assert any(np.abs(g).max() > 1e-3 for g in z_grads)
    # evaluating an action the mask forbids is an error
    bad = masks.copy()
    bad[0, 0, :3] = False
    bad[0, 0, acts[0][0, 0]] = True
    bad[0, 0, (acts[0][0, 0] + 1) % 3] = True
    bad2 = bad.copy()
    bad2[0, 0, acts[0][0, 0]] = False
    with pytest.raises(ValueError, match="forbids"):
        p.evaluate(obs, acts, s0, es, action_masks=bad2)


def test_mask_errors():
    p = LSTMPolicy(MASKED_OBS, spaces.Discrete(5), hidden_size=4, seed=0)
    obs = {"obs": np.zeros((2, 3), np.float32), "action_mask": np.zeros((2, 5), bool)}
    with pytest.raises(ValueError, match="at least one"):
        p.act(obs, None, None)
    with pytest.raises(ValueError, match="shape"):
        p.act(obs, None, None, action_mask=np.ones((2, 4), bool))
    q = LSTMPolicy(BOX, spaces.Box(-1, 1, (2,)), hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="no Discrete"):
        q.act(np.zeros((2, 3)), None, None, action_mask=np.ones((2, 2), bool))


def test_memoryless_policy_is_the_same_network_with_the_state_zeroed_every_step(tmp_path):
    """memoryless=True: act, value and evaluate give, at every step, exactly what the same
    weights give from the zero state; saving and loading keep it; export refuses it."""
    rng = np.random.default_rng(0)
    obs_space, act_space = spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3)
    pol = LSTMPolicy(obs_space, act_space, hidden_size=8, seed=1, shared_core=False,
                     memoryless=True)
    ref = LSTMPolicy(obs_space, act_space, hidden_size=8, seed=1, shared_core=False)
    ref.flat_params[...] = pol.flat_params
    T, B = 6, 4
    obs = rng.standard_normal((T, B, 3)).astype(np.float32)
    acts = rng.integers(0, 3, (T, B))
    state = tuple(rng.standard_normal(s.shape).astype(np.float32)
                  for s in pol.initial_state(B))
    starts = np.zeros((T, B), dtype=bool)
    lp, ent, v, _ = pol.evaluate(obs, acts, state, starts)
    lp1, ent1, v1, _ = ref.evaluate(obs, acts, None, np.ones((T, B), dtype=bool))
    np.testing.assert_array_equal(lp, lp1)
    np.testing.assert_array_equal(v, v1)
    for t in range(T):
        a, vals, logp, new_state = pol.act(obs[t], state, starts[t], deterministic=True)
        a1, vals1, logp1, _ = ref.act(obs[t], None, np.ones(B, bool), deterministic=True)
        np.testing.assert_array_equal(a, a1)
        np.testing.assert_allclose(vals, v1[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pol.value(obs[t], state), ref.value(obs[t], None))
        state = new_state
    assert any(np.abs(s).max() > 0 for s in state)  # the state is returned, never read
    path = tmp_path / "p.rlstm"
    pol.save(path)
    loaded = LSTMPolicy.load(path)
    assert loaded.memoryless and loaded.config()["memoryless"] is True
    assert "memoryless" not in ref.config()  # files of policies with memory are unchanged
    with pytest.raises(TypeError, match="memoryless"):
        LSTMPolicy(obs_space, act_space, memoryless=1)
    from rlstm.export.plan import ExportPlan
    with pytest.raises(ValueError, match="memoryless"):
        ExportPlan(rlstm.policy.Predictor(pol))


@pytest.mark.parametrize("shared_core", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_advance_reaches_the_state_act_reaches_step_by_step(shared_core, dtype, core):
    rng = np.random.default_rng(0)
    pol = LSTMPolicy(spaces.Dict({"a": BOX, "b": spaces.Discrete(3)}), spaces.Discrete(2),
                     hidden_size=8, num_layers=2, seed=0, shared_core=shared_core,
                     mlp_hidden=(5,), dtype=dtype, core=core)
    T, B = 9, 3
    obs = {"a": rng.uniform(-1, 1, (T, B, 3)).astype(np.float32),
           "b": rng.integers(0, 3, (T, B))}
    starts = rng.random((T, B)) < 0.25
    state0 = tuple(rng.standard_normal(s.shape).astype(dtype) for s in pol.initial_state(B))
    state = state0
    for t in range(T):
        _, _, _, state = pol.act(take_step(obs, t), state, starts[t])
    out = pol.advance(obs, state0, starts)
    assert len(out) == len(state)
    for a, b in zip(out, state):
        assert a.dtype == dtype
        # One GEMM over all T steps' inputs against T per-step GEMMs: equal to rounding.
        tol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    for a, b in zip(pol.advance(obs, None, np.ones((T, B), bool)),
                    pol.advance(obs, state0, np.ones((T, B), bool))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="episode_starts"):
        pol.advance(obs, state0, starts[0])
    with pytest.raises(ValueError, match="state"):
        pol.advance(obs, pol.initial_state(B + 1), starts)


@pytest.mark.parametrize("mlp_hidden, wants_dx", [((), False), ((8,), True)])
def test_the_cores_input_gradient_is_skipped_when_nothing_uses_it(mlp_hidden, wants_dx,
                                                                  monkeypatch):
    from gymnasium import spaces

    from rlstm import LSTM
    from rlstm.policy import LSTMPolicy
    policy = LSTMPolicy(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), hidden_size=8,
                        mlp_hidden=mlp_hidden, shared_core=False, seed=0)
    seen = []
    real = LSTM.backward

    def spy(self, dy, cache, dstate=None, input_grad=True):
        seen.append(input_grad)
        return real(self, dy, cache, dstate, input_grad=input_grad)

    monkeypatch.setattr(LSTM, "backward", spy)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (4, 2, 3)).astype(np.float32)
    actions = rng.integers(0, 2, (4, 2))
    out = policy.evaluate(obs, actions, policy.initial_state(2), np.zeros((4, 2), bool))
    policy.zero_grad()
    ones = np.ones((4, 2), np.float32)
    policy.backward(ones, 0 * ones, ones, out[-1])
    assert seen == [wants_dx, wants_dx]  # actor and critic cores


@pytest.mark.parametrize("core_kwargs, match", [
    ({"batch_first": True}, "a policy core is time-major"),
    ({"dropout": 0.2}, "a policy core cannot use dropout"),
    ({"bidirectional": True}, "a policy core cannot be bidirectional"),
])
def test_core_options_that_break_act_and_evaluate_agreeing_are_refused(core_kwargs, match):
    from gymnasium import spaces

    from rlstm.policy import LSTMPolicy
    with pytest.raises(ValueError, match=match):
        LSTMPolicy(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), hidden_size=8,
                   num_layers=2, core_kwargs=core_kwargs)


def test_head_hidden_adds_separate_actor_and_critic_mlps_after_the_core(tmp_path):
    p = LSTMPolicy(BOX, spaces.Discrete(3), hidden_size=8, seed=0, head_hidden=(16, 4))
    shapes = {k: v.shape for k, v in p.params.items()}
    assert shapes["actor_head.0.weight"] == shapes["critic_head.0.weight"] == (16, 8)
    assert shapes["actor_head.1.weight"] == shapes["critic_head.1.weight"] == (4, 16)
    assert shapes["action.weight"] == (3, 4) and shapes["value.weight"] == (1, 4)
    assert not np.array_equal(p.params["actor_head.0.weight"], p.params["critic_head.0.weight"])
    # a policy without head_hidden is the same network it always was (same seed, same weights)
    plain = LSTMPolicy(BOX, spaces.Discrete(3), hidden_size=8, seed=0)
    np.testing.assert_array_equal(plain.params["core.weight_ih_l0"],
                                  p.params["core.weight_ih_l0"])
    assert "head_hidden" not in plain.config() and p.config()["head_hidden"] == [16, 4]
    p.save(tmp_path / "p")
    q = LSTMPolicy.load(tmp_path / "p")
    assert q.head_hidden == (16, 4)
    np.testing.assert_array_equal(q.flat_params, p.flat_params)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    a1, v1, lp1, _ = p.act(obs, None, None, deterministic=True)
    a2, v2, lp2, _ = q.act(obs, None, None, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(v1, v2)


@pytest.mark.parametrize("bad, err", [("64", TypeError), ((64, 0), ValueError),
                                      ({"pi": [64]}, TypeError), ((1.5,), TypeError),
                                      (True, TypeError)])
def test_bad_head_hidden_is_refused(bad, err):
    with pytest.raises(err, match="head_hidden"):
        LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=4, head_hidden=bad)
