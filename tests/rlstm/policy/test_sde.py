"""gSDE (generalized state-dependent exploration) for Box actions: head maths, policy, trainer."""
import numpy as np
import pytest
from gymnasium import spaces
from scipy import stats

from agents import PPO
from rlstm.policy import LSTMPolicy
from rlstm.policy.heads import SDE_EPS, StateDependentGaussian
from rlstm.reference.gradcheck import central_difference

BOX_OBS = spaces.Box(-1, 1, (3,), np.float32)
BOX_ACT = spaces.Box(-1, 1, (2,), np.float32)


def _head_case(rng, N=5, H=4, d=2):
    head = StateDependentGaussian(spaces.Box(-1, 1, (d,)))
    z = rng.standard_normal((N, d))
    latent = np.tanh(rng.standard_normal((N, H)))
    log_std = rng.normal(-0.3, 0.4, (H, d))
    a = z + rng.standard_normal((N, d))
    return head, z, latent, log_std, a


def test_log_prob_and_entropy_match_scipy_normal():
    head, z, y, L, a = _head_case(np.random.default_rng(0))
    sd = np.sqrt((y ** 2) @ np.exp(2 * L) + SDE_EPS)
    lp, ent, _ = head.log_prob_entropy(z, a, None, L, latent=y)
    np.testing.assert_allclose(lp, stats.norm.logpdf(a, z, sd).sum(1), rtol=1e-12)
    np.testing.assert_allclose(ent, stats.norm.entropy(z, sd).sum(1), rtol=1e-12)


def test_head_backward_matches_central_differences_with_the_latent_held():
    rng = np.random.default_rng(1)
    head, z, y, L, a = _head_case(rng)
    c1, c2 = rng.standard_normal((2, z.shape[0]))

    def f():  # reads z, L and y as they are now (central_difference perturbs them in place)
        lp, ent, _ = head.log_prob_entropy(z, a, None, L, latent=y)
        return float(np.sum(c1 * lp + c2 * ent))

    _, _, cache = head.log_prob_entropy(z, a, None, L, latent=y)
    dz, dL = head.backward(c1, c2, cache)
    dy = head.backward_latent(c1, c2, cache, y)
    np.testing.assert_allclose(dz, central_difference(f, z), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dL, central_difference(f, L), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dy, central_difference(f, y), rtol=1e-6, atol=1e-8)


def test_fixed_noise_gives_actions_linear_in_the_latent():
    """With the exploration matrices held, action - mean = y @ (E * exp(log_std)) exactly."""
    p = LSTMPolicy(BOX_OBS, BOX_ACT, hidden_size=6, seed=0, dtype=np.float64, use_sde=True,
                   log_std_init=-0.5)
    rng = np.random.default_rng(2)
    B = 3
    noise = p.sample_sde_noise(B, rng)
    assert noise.shape == (B, 6, 2) and p.params["log_std"].shape == (6, 2)
    obs = rng.uniform(-1, 1, (B, 3))
    s0 = p.initial_state(B)
    a, _, lp, s1 = p.act(obs, s0, None, sde_noise=noise)
    mean, _, _, _ = p.act(obs, s0, None, deterministic=True)
    y = s1[0][-1]  # the LSTM core's output is its last layer's h
    want = mean + np.einsum("bh,bhd->bd", y, noise * np.exp(p.params["log_std"]))
    np.testing.assert_allclose(a, want, rtol=1e-12)
    a2, _, lp2, _ = p.act(obs, s0, None, sde_noise=noise)  # same noise: same action
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(lp, lp2)


def test_sampled_deviation_has_the_state_dependent_variance():
    p = LSTMPolicy(BOX_OBS, BOX_ACT, hidden_size=5, seed=1, dtype=np.float64, use_sde=True)
    rng = np.random.default_rng(3)
    n = 4000
    obs = np.repeat(rng.uniform(-1, 1, (1, 3)), n, axis=0)
    s0 = p.initial_state(n)
    a, _, _, s1 = p.act(obs, s0, None, rng=rng)  # fresh matrices per row
    mean = p.act(obs[:1], p.initial_state(1), None, deterministic=True)[0]
    y = s1[0][-1][:1]
    var = (y ** 2) @ np.exp(2 * p.params["log_std"])
    dev = a - mean
    # sample variance of n normals: relative standard error sqrt(2/n) ~ 2.2%
    np.testing.assert_allclose(dev.var(axis=0), var[0], rtol=5 * np.sqrt(2 / n))
    assert abs(dev.mean(axis=0) / np.sqrt(var[0] / n)).max() < 5


def test_learn_features_only_changes_the_core_gradients():
    rng = np.random.default_rng(4)
    T, B = 4, 2
    kw = dict(hidden_size=4, seed=5, dtype=np.float64, use_sde=True, action_init_scale=1.0)
    p0 = LSTMPolicy(BOX_OBS, BOX_ACT, **kw)
    p1 = LSTMPolicy(BOX_OBS, BOX_ACT, sde_learn_features=True, **kw)
    obs = rng.uniform(-1, 1, (T, B, 3))
    acts = rng.standard_normal((T, B, 2))
    es = np.zeros((T, B), bool)
    c = rng.standard_normal((2, T, B))
    grads = []
    for p in (p0, p1):
        *_, cache = p.evaluate(obs, acts, None, es)
        p.zero_grad()
        p.backward(c[0], c[1], None, cache)
        grads.append({k: v.copy() for k, v in p.grads.items()})
    for name in grads[0]:
        if name.startswith("core."):
            assert not np.allclose(grads[0][name], grads[1][name]), name
        else:
            np.testing.assert_array_equal(grads[0][name], grads[1][name])


def test_bad_sde_arguments_are_explained():
    plain = LSTMPolicy(BOX_OBS, BOX_ACT, hidden_size=4, seed=0)
    sde = LSTMPolicy(BOX_OBS, BOX_ACT, hidden_size=4, seed=0, use_sde=True)
    obs = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="use_sde=True"):
        plain.sample_sde_noise(2)
    with pytest.raises(ValueError, match="use_sde=False"):
        plain.act(obs, None, None, sde_noise=np.zeros((2, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 4, 2\)"):
        sde.act(obs, None, None, sde_noise=np.zeros((3, 4, 2), np.float32))
    with pytest.raises(ValueError, match="finite"):
        sde.act(obs, None, None, sde_noise=np.full((2, 4, 2), np.nan, np.float32))
    with pytest.raises(TypeError, match="use_sde must be a bool"):
        LSTMPolicy(BOX_OBS, BOX_ACT, use_sde="yes")
    with pytest.raises(ValueError, match="needs use_sde=True"):
        LSTMPolicy(BOX_OBS, BOX_ACT, sde_learn_features=True)
    with pytest.raises(ValueError, match="sde_sample_freq"):
        PPO("Pendulum-v1", use_sde=True, sde_sample_freq=0)
    with pytest.raises(ValueError, match="not in policy_kwargs"):
        PPO("Pendulum-v1", policy_kwargs={"use_sde": True})


def test_save_load_keeps_the_sde_policy(tmp_path):
    p = LSTMPolicy(BOX_OBS, BOX_ACT, hidden_size=4, seed=0, use_sde=True, log_std_init=-1.0)
    p.flat_params[...] = np.random.default_rng(0).normal(0, 0.3, p.num_params)
    p.save(tmp_path / "p.rlstm")
    q = LSTMPolicy.load(tmp_path / "p.rlstm")
    assert q.use_sde and q.params["log_std"].shape == (4, 2)
    noise = p.sample_sde_noise(2, np.random.default_rng(1))
    obs = np.ones((2, 3), np.float32) * 0.3
    np.testing.assert_array_equal(p.act(obs, None, None, sde_noise=noise)[0],
                                  q.act(obs, None, None, sde_noise=noise)[0])


def test_matches_stable_baselines3_state_dependent_noise_distribution():
    torch = pytest.importorskip("torch")
    sb3_dist = pytest.importorskip("stable_baselines3.common.distributions")
    head, z, y, L, a = _head_case(np.random.default_rng(6))
    dist = sb3_dist.StateDependentNoiseDistribution(z.shape[1], full_std=True)
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    dist.proba_distribution(t(z), t(L), t(y))
    lp, ent, _ = head.log_prob_entropy(z, a, None, L, latent=y)
    np.testing.assert_allclose(lp, dist.log_prob(t(a)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(ent, dist.entropy().numpy(), rtol=1e-10)


def test_use_sde_has_no_effect_without_a_box_action():
    p = LSTMPolicy(BOX_OBS, spaces.Discrete(3), hidden_size=4, seed=0, use_sde=True,
                   sde_learn_features=True)
    assert not p.use_sde and not p.sde_learn_features and "log_std" not in p.params
    with pytest.raises(ValueError, match="use_sde=True"):
        p.sample_sde_noise(2)
