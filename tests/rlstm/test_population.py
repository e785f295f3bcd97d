"""PopulationPolicy / population kernels against looping LSTMPolicy.act per member."""
import gymnasium as gym
import numpy as np
import pytest

from rlstm.policy import LSTMPolicy
from rlstm.population import PopulationPolicy

BOX = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
CASES = [
    (BOX, gym.spaces.Discrete(3), {}),
    (BOX, gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float32), {"num_layers": 2}),
    (BOX, gym.spaces.MultiDiscrete([2, 3]), {"dtype": np.float64,
                                             "core_kwargs": {"variant": "peephole"}}),
    (gym.spaces.Discrete(5), gym.spaces.Tuple((gym.spaces.Discrete(2),
                                              gym.spaces.Box(-1, 1, (1,), np.float32))), {}),
    (BOX, gym.spaces.Discrete(2), {"mlp_hidden": (8,)}),
    (BOX, gym.spaces.Discrete(3), {"head_hidden": (7, 5), "mlp_hidden": (8,)}),
    (BOX, gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float32), {"head_hidden": (5,),
                                                              "use_sde": True}),
    (BOX, gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float32), {"use_sde": True}),
    (BOX, gym.spaces.Discrete(3), {"core_kwargs": {"cell_activation": "identity"}}),
    # images through each member's own conv net (a regression: the population used to feed
    # the raw pixels to the core and act [0 0 0 0] where the policy acted [1 1 0 1])
    (gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), gym.spaces.Discrete(2), {}),
    (gym.spaces.Box(0, 255, (7, 7, 3), np.uint8), gym.spaces.Discrete(3),
     {"mlp_hidden": (8,)}),
    (gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (9, 11, 2), np.uint8),
                      "pos": gym.spaces.Discrete(4)}), gym.spaces.Discrete(3), {}),
    (gym.spaces.Box(0, 255, (12, 12, 1), np.uint8), gym.spaces.Discrete(2),
     {"image_encoder": "flatten"}),
    # action masks carried in the observation
    (gym.spaces.Dict({"obs": BOX, "action_mask": gym.spaces.MultiBinary(4)}),
     gym.spaces.Discrete(4), {}),
]


def _obs(space, rng, n):
    if isinstance(space, gym.spaces.Dict):
        out = {k: _obs(s, rng, n) for k, s in space.spaces.items()}
        if "action_mask" in out:
            out["action_mask"] = rng.random((n,) + space["action_mask"].shape) < 0.6
            out["action_mask"][:, 0] = True
        return out
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.n, size=n)
    if space.dtype == np.uint8:
        return rng.integers(0, 256, size=(n,) + space.shape).astype(np.uint8)
    return rng.normal(size=(n,) + space.shape).astype(np.float32)


def _rows(obs, rows):
    return {k: v[rows] for k, v in obs.items()} if isinstance(obs, dict) else obs[rows]


def _leaves(a):
    return [np.asarray(x, dtype=np.float64) for x in (a if isinstance(a, tuple) else (a,))]


@pytest.mark.parametrize("obs_space,act_space,kw", CASES)
def test_population_equals_per_member_act(obs_space, act_space, kw):
    template = LSTMPolicy(obs_space, act_space, hidden_size=6, seed=0, **kw)
    P, B, T = 4, 3, 5
    rng = np.random.default_rng(1)
    params = rng.normal(0, 0.7, (P, template.num_params)).astype(template.dtype)
    obs = [_obs(obs_space, rng, P * B) for _ in range(T)]
    starts = [np.zeros(P * B, bool)] + [rng.random(P * B) < 0.2 for _ in range(T - 1)]
    pop = PopulationPolicy(template, params, batch_per_member=B)
    state = pop.initial_state()
    got = []
    for t in range(T):
        a, state = pop.act(obs[t], state, starts[t])
        got.append(_leaves(a))
    tol = 1e-5 if template.dtype == np.float32 else 1e-12
    for p in range(P):
        template.flat_params[...] = params[p]
        rows = slice(p * B, (p + 1) * B)
        s = template.initial_state(B)
        for t in range(T):
            a, _, _, s = template.act(_rows(obs[t], rows), s, starts[t][rows],
                                      deterministic=True)
            for want, have in zip(_leaves(a), got[t]):
                np.testing.assert_allclose(have[rows], want, atol=tol, rtol=0)


def test_population_state_matches_core_step():
    template = LSTMPolicy(BOX, gym.spaces.Discrete(2), hidden_size=5, seed=2, dtype=np.float64)
    params = np.random.default_rng(0).normal(size=(3, template.num_params))
    x = np.random.default_rng(1).normal(size=(3, 4))
    pop = PopulationPolicy(template, params)
    y, (h, c) = pop.features(x)
    for p in range(3):
        template.flat_params[...] = params[p]
        yp, (hp, cp) = template.core.step(x[p:p + 1])
        np.testing.assert_allclose(y[p], yp[0], atol=1e-13)
        np.testing.assert_allclose(c[0, p], cp[0, 0], atol=1e-13)


def test_population_rejects_bad_input():
    template = LSTMPolicy(BOX, gym.spaces.Discrete(2), hidden_size=4, seed=0)
    n = template.num_params
    with pytest.raises(ValueError, match=r"\(P, %d\)" % n):
        PopulationPolicy(template, np.zeros((2, n + 1)))
    with pytest.raises(ValueError, match="2 dimensions"):
        PopulationPolicy(template, np.zeros(n))
    with pytest.raises(TypeError, match="real numbers"):
        PopulationPolicy(template, np.full((2, n), "a"))
    with pytest.raises(ValueError, match="NaN"):
        PopulationPolicy(template, np.full((2, n), np.nan))
    with pytest.raises(TypeError, match="LSTMPolicy"):
        PopulationPolicy(object(), np.zeros((2, n)))
    pop = PopulationPolicy(template, np.zeros((2, n)), batch_per_member=2)
    with pytest.raises(ValueError, match="shape"):
        pop.act(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="state arrays must have shape"):
        pop.act(np.zeros((4, 4)), (np.zeros((1, 3, 4)), np.zeros((1, 3, 4))))
    with pytest.raises(ValueError, match=r"obs must have shape \(4, 4\)"):
        pop.act(np.zeros((4, 6)))  # observations of another width never reach the kernel


@pytest.mark.parametrize("kw", [{"core": "gru"}, {"core_kwargs": {"variant": "peephole_cell"}}])
def test_population_refuses_cores_it_cannot_step(kw):
    template = LSTMPolicy(BOX, gym.spaces.Discrete(2), hidden_size=4, seed=0, **kw)
    with pytest.raises(ValueError, match="unidirectional rlstm.LSTM core"):
        PopulationPolicy(template, np.zeros((2, template.num_params)))


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("B,peep,identity", [(1, False, False), (3, True, False),
                                             (2, True, True), (1, True, True)])
def test_population_kernels_match_numpy_reference(dtype, tol, B, peep, identity):
    from rlstm import _kernels
    from rlstm.reference import population as ref
    rng = np.random.default_rng(0)
    P, D, H, A = 5, 3, 4, 2
    sizes = [4 * H * D, 4 * H * H, 4 * H, 4 * H, 3 * H, A * H, A]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    params = rng.normal(0, 0.8, (P, offs[-1])).astype(dtype)
    x = rng.normal(size=(P * B, D)).astype(dtype)
    h = rng.normal(size=(P * B, H)).astype(dtype)
    c = rng.normal(size=(P * B, H)).astype(dtype)
    o_peep = int(offs[4]) if peep else -1
    gates = np.empty((P * B, 4 * H), dtype)
    h_out, c_out = np.empty_like(h), np.empty_like(c)
    _kernels.population_lstm_step(params, int(offs[0]), int(offs[1]), int(offs[2]),
                                  int(offs[3]), o_peep, identity, x, h, c, gates, h_out, c_out)
    h_ref, c_ref = ref.population_lstm_step(params.astype(np.float64), offs[0], offs[1], offs[2],
                                            offs[3], o_peep, identity, x.astype(np.float64),
                                            h.astype(np.float64), c.astype(np.float64))
    np.testing.assert_allclose(h_out, h_ref, atol=tol, rtol=0)
    np.testing.assert_allclose(c_out, c_ref, atol=tol * 10, rtol=0)
    for act in (0, 1, 2):
        for ob in (int(offs[6]), -1):
            out = np.empty((P * B, A), dtype)
            _kernels.population_linear(params, int(offs[5]), ob, h_out, out, act)
            want = ref.population_linear(params.astype(np.float64), offs[5], ob,
                                         h_out.astype(np.float64), A, act)
            np.testing.assert_allclose(out, want, atol=tol * 10, rtol=0)
