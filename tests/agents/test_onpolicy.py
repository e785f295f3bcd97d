"""agents.onpolicy: apply_gradients' divergence guards, the linear learning-rate schedule of a
learn call, and OnPolicyConfig's rules between fields."""
import numpy as np
import pytest

from agents import PPO, TrainingDiverged
from agents.onpolicy import OnPolicyConfig


@pytest.fixture
def model(tiny):
    return PPO("CartPole-v1", seed=0, dtype="float64", max_grad_norm=0.5, **tiny)


def batch(model, T=4, B=2, seed=0):
    """A (T, B) batch evaluated by the model's policy: its cache and the model's state."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (T, B, 4))
    actions = rng.integers(0, 2, (T, B))
    starts = np.zeros((T, B), bool)
    starts[0] = True
    *_, cache = model.policy.evaluate(obs, actions, None, starts)
    return cache, rng.standard_normal((3, T, B))


def snapshot(model):
    opt = model.optimizer
    return (model.policy.flat_params.copy(), opt.m.copy(), opt.v.copy(), opt.t)


def assert_unchanged(model, before):
    params, m, v, t = before
    np.testing.assert_array_equal(model.policy.flat_params, params)
    np.testing.assert_array_equal(model.optimizer.m, m)
    np.testing.assert_array_equal(model.optimizer.v, v)
    assert model.optimizer.t == t
    assert np.isfinite(model.policy.flat_params).all()


def test_a_finite_step_returns_the_norm_before_clipping_and_moves_the_parameters(model):
    cache, (a, b, c) = batch(model)
    model.policy.zero_grad()
    model.policy.backward(a, b, c, cache)
    norm = float(np.linalg.norm(model.policy.flat_grads))
    assert norm > 0.5  # so the clip acts
    before = snapshot(model)
    out = model.apply_gradients(1.0, a, b, c, cache)
    assert out == pytest.approx(norm, rel=1e-12)
    assert np.linalg.norm(model.policy.flat_grads) == pytest.approx(0.5, rel=1e-5)
    assert model.optimizer.t == before[3] + 1
    assert not np.array_equal(model.policy.flat_params, before[0])


@pytest.mark.parametrize("loss", [np.nan, np.inf, -np.inf])
def test_a_non_finite_loss_diverges_before_anything_changes(model, loss):
    cache, (a, b, c) = batch(model)
    model.policy.flat_grads[...] = 0.25
    before = snapshot(model)
    with pytest.raises(TrainingDiverged, match=f"the loss is {loss}"):
        model.apply_gradients(loss, a, b, c, cache)
    assert_unchanged(model, before)
    assert (model.policy.flat_grads == 0.25).all()  # not even the gradients were touched


def test_nan_gradients_diverge_without_a_step(model, monkeypatch):
    cache, (a, b, c) = batch(model)
    before = snapshot(model)
    real_backward = model.policy.backward

    def backward_with_a_nan(*args):
        real_backward(*args)
        model.policy.flat_grads[7] = np.nan
    monkeypatch.setattr(model.policy, "backward", backward_with_a_nan)
    with pytest.raises(TrainingDiverged, match="the gradient contains NaN or inf"):
        model.apply_gradients(1.0, a, b, c, cache)
    assert_unchanged(model, before)


def test_a_huge_finite_gradient_is_clipped_not_a_divergence(model):
    """The squared norm of a gradient near the float64 limit overflows; the norm is then taken
    on the rescaled gradient, so clipping still applies and the step stays finite."""
    cache, (a, b, c) = batch(model)
    before = model.policy.flat_params.copy()
    with np.errstate(over="ignore"):
        norm = model.apply_gradients(1.0, a, b, 1e300 * np.sign(c), cache)
    assert 1e290 < norm < np.inf
    assert np.isfinite(model.policy.flat_params).all()
    assert not np.array_equal(model.policy.flat_params, before)


def test_nan_output_gradients_are_a_divergence(model):
    cache, (a, b, c) = batch(model)
    before = snapshot(model)
    a[0, 0] = np.nan
    with pytest.raises(TrainingDiverged):
        model.apply_gradients(1.0, a, b, c, cache)
    assert_unchanged(model, before)


def learning_rates(model, timesteps):
    seen = []
    model.learn(timesteps, callback=lambda m: seen.append(m.optimizer.lr))
    return seen


def test_linear_schedule_decays_over_each_learn_call_to_lr_over_iterations():
    lr0, k = 0.01, 8
    model = PPO("CartPole-v1", seed=0, n_envs=1, n_steps=4, n_epochs=1, hidden_size=4,
                learning_rate=lr0)  # 4 steps per iteration
    seen = learning_rates(model, 4 * k)
    expected = [lr0 * (1 - i / k) for i in range(k)]  # the fraction done before each update
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert seen[-1] == pytest.approx(lr0 / k)  # the last update: lr / iterations
    np.testing.assert_allclose([r["learning_rate"] for r in model.history], expected,
                               rtol=1e-12)
    np.testing.assert_allclose(learning_rates(model, 8), [lr0, lr0 / 2], rtol=1e-12)
    model.close()
    constant = PPO("CartPole-v1", seed=0, n_envs=1, n_steps=4, n_epochs=1, hidden_size=4,
                   learning_rate=lr0, lr_schedule="constant")
    assert learning_rates(constant, 16) == [lr0] * 4
    constant.close()


@pytest.mark.parametrize("n_steps,seq_len,length", [(12, None, 12), (12, 4, 4), (12, 12, 12),
                                                    (12, 1, 1)])
def test_seq_len_that_divides_n_steps(n_steps, seq_len, length):
    cfg = OnPolicyConfig(n_steps=n_steps, seq_len=seq_len)
    assert cfg.sequence_length == length


@pytest.mark.parametrize("seq_len", [5, 8, 24])
def test_seq_len_that_does_not_divide_n_steps_is_refused(seq_len):
    with pytest.raises(ValueError, match=rf"^OnPolicyConfig\.seq_len \({seq_len}\) must divide "
                                         rf"n_steps \(12\); e\.g\. seq_len=None"):
        OnPolicyConfig(n_steps=12, seq_len=seq_len)


@pytest.mark.parametrize("freq,ok", [(-1, True), (1, True), (7, True), (0, False),
                                     (-2, False)])
def test_sde_sample_freq_is_minus_one_or_positive(freq, ok):
    if ok:
        assert OnPolicyConfig(sde_sample_freq=freq).sde_sample_freq == freq
    else:
        with pytest.raises(ValueError, match=rf"sde_sample_freq must be -1 \(once per rollout\) "
                                             rf"or >= 1, got {freq}"):
            OnPolicyConfig(sde_sample_freq=freq)


@pytest.mark.parametrize("key", ["hidden_size", "num_layers", "mlp_hidden", "dtype",
                                 "shared_core", "use_sde"])
def test_policy_kwargs_may_not_repeat_a_trainer_field(key):
    with pytest.raises(ValueError, match=rf"set {key} on the trainer config, not in "
                                         rf"policy_kwargs"):
        OnPolicyConfig(policy_kwargs={key: 1})


def test_other_policy_kwargs_reach_the_policy():
    cfg = OnPolicyConfig(policy_kwargs={"log_std_init": -1.0, "core": "gru"})
    assert cfg.policy_kwargs == {"log_std_init": -1.0, "core": "gru"}
    m = PPO("Pendulum-v1", seed=0, n_envs=1, n_steps=4, hidden_size=4, policy_kwargs={
        "log_std_init": -1.0, "core": "gru"})
    assert m.policy.core_type == "gru" and (m.policy.params["log_std"] == -1.0).all()
