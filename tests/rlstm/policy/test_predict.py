"""rlstm.policy.predict.Predictor: single and batched observations, state and episode starts,
Box clipping, normalisation with saved statistics, loading policy and trainer files, refusals."""
import numpy as np
import pytest
from gymnasium import spaces

import agents
import rlstm
from rlstm.io import describe
from rlstm.policy import LSTMPolicy, ObsNormalizer, Predictor
from rlstm.serialization import save_arrays

BOX = spaces.Box(-1, 1, (3,), np.float32)
ACT_BOX = spaces.Box(-5, 5, (2,), np.float32)  # wide: actions are compared unclipped
NARROW = spaces.Box(-0.1, 0.2, (2,), np.float32)


def make_policy(obs=BOX, act=ACT_BOX, **kw):
    kw = {"hidden_size": 6, "num_layers": 2, "seed": 0, "dtype": np.float64,
          "action_init_scale": 1.0, **kw}
    return LSTMPolicy(obs, act, **kw)


def fitted_normalizer(shape=(3,), seed=0):
    norm = ObsNormalizer(shape, clip=2.0)
    norm.update(np.random.default_rng(seed).normal([0.5, -1.0, 2.0], [0.1, 3.0, 0.5],
                                                    (100,) + tuple(shape)))
    return norm


def test_a_single_observation_acts_as_row_of_a_batch():
    pred = Predictor(make_policy())
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 3))
    batch, bstate = pred.predict(obs, deterministic=True)
    assert batch.shape == (4, 2) and batch.dtype == np.float32
    assert [s.shape for s in bstate] == [(2, 4, 6)] * 2
    for i in range(4):
        one, state = pred.predict(obs[i], deterministic=True)
        assert one.shape == (2,)
        np.testing.assert_allclose(one, batch[i], rtol=1e-6)
        for s, b in zip(state, bstate, strict=True):
            assert s.shape == (2, 1, 6)
            np.testing.assert_allclose(s[:, 0], b[:, i], rtol=1e-12)


def test_dict_and_tuple_spaces_single_and_batched():
    obs_space = spaces.Dict({"pos": BOX, "k": spaces.Discrete(3, start=1)})
    act_space = spaces.Tuple((spaces.Discrete(4), ACT_BOX))
    pred = Predictor(make_policy(obs_space, act_space))
    rng = np.random.default_rng(1)
    obs = {"pos": rng.uniform(-1, 1, (5, 3)), "k": rng.integers(1, 4, 5)}
    (d, box), _ = pred.predict(obs, deterministic=True)
    assert d.shape == (5,) and box.shape == (5, 2)
    for i in range(5):
        (d1, box1), state = pred.predict({"pos": obs["pos"][i], "k": int(obs["k"][i])},
                                         deterministic=True)
        assert np.shape(d1) == () and d1 == d[i] and state[0].shape == (2, 1, 6)
        np.testing.assert_allclose(box1, box[i], rtol=1e-6)
    assert all(act_space.contains((int(a), b)) for a, b in zip(d, box, strict=True))


def test_state_none_starts_fresh_and_a_returned_state_continues():
    pred = Predictor(make_policy())
    obs = np.random.default_rng(2).uniform(-1, 1, (3, 3))
    fresh, s1 = pred.predict(obs, deterministic=True)
    zero, _ = pred.predict(obs, pred.initial_state(3), deterministic=True)
    np.testing.assert_array_equal(fresh, zero)
    again, _ = pred.predict(obs, None, episode_start=np.zeros(3, bool), deterministic=True)
    np.testing.assert_array_equal(again, fresh)
    second, _ = pred.predict(obs, s1, deterministic=True)
    assert not np.allclose(second, fresh)  # the state carries memory
    # episode_start resets the rows it marks, and only those
    mixed, _ = pred.predict(obs, s1, episode_start=[True, False, True], deterministic=True)
    np.testing.assert_array_equal(mixed[[0, 2]], fresh[[0, 2]])
    np.testing.assert_array_equal(mixed[1], second[1])
    one_state = tuple(s[:, :1] for s in s1)
    reset_one, _ = pred.predict(obs[0], one_state, episode_start=True, deterministic=True)
    np.testing.assert_allclose(reset_one, fresh[0], rtol=1e-6)


def test_box_actions_are_clipped_to_the_space_and_its_dtype():
    policy = make_policy(act=NARROW)
    policy.params["action.bias"][...] = [5.0, -5.0]  # the means lie far outside the bounds
    pred = Predictor(policy, seed=0)
    obs = np.zeros((3, 3))
    raw = policy.act(obs, None, None, deterministic=True)[0]
    assert raw[:, 0].min() > 1 and raw[:, 1].max() < -1
    for deterministic in (True, False):
        a, _ = pred.predict(obs, deterministic=deterministic)
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, np.tile(np.float32([0.2, -0.1]), (3, 1)))


def test_observations_are_normalised_with_the_given_statistics():
    policy = make_policy()
    norm = fitted_normalizer()
    pred = Predictor(policy, norm)
    obs = np.random.default_rng(3).normal([0.5, -1.0, 2.0], 1.0, (4, 3))
    a, _ = pred.predict(obs, deterministic=True)
    x = np.clip((obs - norm.mean) / np.sqrt(norm.var + norm.epsilon), -2.0, 2.0)
    np.testing.assert_allclose(pred.normalize(obs), x, rtol=1e-12)
    expected = policy.act(x, None, None, deterministic=True)[0]
    assert np.abs(expected).max() < 5  # nothing clipped
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    raw, _ = Predictor(policy).predict(obs, deterministic=True)
    assert not np.allclose(raw, a)
    assert Predictor(policy).normalize(obs) is obs


def test_stochastic_predictions_follow_the_seed_or_the_given_rng():
    obs = np.zeros((8, 3))
    a1 = Predictor(make_policy(), seed=5).predict(obs)[0]
    a2 = Predictor(make_policy(), seed=5).predict(obs)[0]
    a3 = Predictor(make_policy(), seed=6).predict(obs)[0]
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    pred = Predictor(make_policy(), seed=5)
    a4 = pred.predict(obs, rng=np.random.default_rng(7))[0]
    np.testing.assert_array_equal(a4, Predictor(make_policy(), seed=0).predict(
        obs, rng=np.random.default_rng(7))[0])
    np.testing.assert_array_equal(pred.predict(obs)[0], a1)  # its own generator was not used


def test_load_a_policy_file(tmp_path):
    policy = make_policy()
    policy.save(tmp_path / "p.rlstm")
    pred = Predictor.load(tmp_path / "p.rlstm")
    assert pred.obs_normalizer is None and isinstance(pred.policy, LSTMPolicy)
    obs = np.random.default_rng(4).uniform(-1, 1, (3, 3))
    np.testing.assert_array_equal(pred.predict(obs, deterministic=True)[0],
                                  Predictor(policy).predict(obs, deterministic=True)[0])


TRAINERS = {
    "ppo": lambda: agents.PPO("rlstm/PendulumNoVel-v1", seed=0, n_envs=2, n_steps=8, seq_len=4,
                              hidden_size=8, n_epochs=2, n_minibatches=2).learn(16),
    "es": lambda: agents.OpenAIES("CartPole-v1", seed=0, population_size=8, center_episodes=1,
                                  max_episode_steps=40, noise_table_size=50_000,
                                  backend="serial", hidden_size=4).learn(1),
}


@pytest.mark.parametrize("name", TRAINERS)
def test_load_a_trainer_file_predicts_as_the_trainer(name, tmp_path):
    model = TRAINERS[name]()
    model.save(tmp_path / "m.rlstm")
    model.close()
    pred = Predictor.load(tmp_path / "m.rlstm")
    assert pred.obs_normalizer is not None
    assert model.obs_normalizer.rms.count > 1  # statistics were gathered
    np.testing.assert_array_equal(pred.obs_normalizer.mean, model.obs_normalizer.mean)
    np.testing.assert_array_equal(pred.obs_normalizer.var, model.obs_normalizer.var)
    assert pred.obs_normalizer.clip == model.obs_normalizer.clip
    np.testing.assert_array_equal(pred.policy.flat_params, model.policy.flat_params)
    space = model.observation_space
    obs = np.random.default_rng(5).uniform(-1, 1, (6,) + space.shape).astype(space.dtype)
    mine, my_state = pred.predict(obs, deterministic=True)
    theirs, their_state = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(mine, theirs)
    for s, t in zip(my_state, their_state, strict=True):
        np.testing.assert_array_equal(s, t)


def test_predict_refusals():
    pred = Predictor(make_policy(), fitted_normalizer())
    with pytest.raises(ValueError, match=r"obs must be real numbers of shape \(4, 3\) \(or one "
                                         r"observation of shape \(3,\)\), got float64 \(4, 2\)"):
        pred.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"obs must have shape \(4, 3\), got \(4, 2\)"):
        Predictor(make_policy()).predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="obs contains NaN or inf"):
        pred.predict(np.array([0.0, np.nan, 0.0]))  # NaN passes the normaliser to be named
    for bad in (1, "True", None, np.array([True])):
        with pytest.raises(TypeError, match="deterministic must be a bool"):
            pred.predict(np.zeros(3), deterministic=bad)


def test_constructor_refusals():
    policy = make_policy()
    with pytest.raises(ValueError, match=r"an ObsNormalizer of shape \(4,\) cannot normalise "
                                         r"observations of Box"):
        Predictor(policy, ObsNormalizer((4,)))
    with pytest.raises(ValueError, match="cannot normalise observations of Discrete"):
        Predictor(make_policy(obs=spaces.Discrete(3)), ObsNormalizer(()))
    with pytest.raises(TypeError, match="obs_normalizer must be an ObsNormalizer or None, got "
                                        "RunningMeanStd"):
        Predictor(policy, fitted_normalizer().rms)
    with pytest.raises(TypeError, match="policy must be an rlstm.policy.LSTMPolicy, got LSTM"):
        Predictor(rlstm.LSTM(3, 4))


def test_files_that_carry_no_policy_are_refused_by_name(tmp_path):
    rlstm.save(rlstm.LSTM(3, 4, seed=0), tmp_path / "lstm.rlstm")
    with pytest.raises(ValueError, match=r"lstm.rlstm holds a 'LSTM', which carries no policy"):
        Predictor.load(tmp_path / "lstm.rlstm")
    save_arrays(tmp_path / "other.rlstm", {"x": np.zeros(2)}, kind="PPO",
                meta={"trainer": {}})
    with pytest.raises(ValueError, match=r"other.rlstm holds a 'PPO', which carries no policy"):
        Predictor.load(tmp_path / "other.rlstm")
    lstm = rlstm.LSTM(3, 4, seed=0)  # a policy section that describes something else
    save_arrays(tmp_path / "odd.rlstm", {"policy/flat_params": lstm.flat_params}, kind="PPO",
                meta={"policy": describe(lstm)})
    with pytest.raises(ValueError, match=r"odd.rlstm holds a LSTM, not an LSTMPolicy"):
        Predictor.load(tmp_path / "odd.rlstm")


def test_a_trainer_file_with_bad_statistics_is_refused_by_name(tmp_path):
    policy = make_policy()
    norm = fitted_normalizer()
    arrays = {"policy/flat_params": policy.flat_params, **norm.state_dict("obs_norm/")}
    meta = {"policy": describe(policy), "obs_norm": norm.config()}
    save_arrays(tmp_path / "ok.rlstm", arrays, kind="PPO", meta=meta)
    loaded = Predictor.load(tmp_path / "ok.rlstm")
    np.testing.assert_array_equal(loaded.obs_normalizer.var, norm.var)
    assert loaded.obs_normalizer.clip == 2.0
    bad_var = {**arrays, "obs_norm/var": -norm.var}
    save_arrays(tmp_path / "bad.rlstm", bad_var, kind="PPO", meta=meta)
    with pytest.raises(ValueError, match=r"bad.rlstm: normalisation statistics are impossible"):
        Predictor.load(tmp_path / "bad.rlstm")
    save_arrays(tmp_path / "clip.rlstm", arrays, kind="PPO",
                meta={**meta, "obs_norm": {**norm.config(), "clip": -1.0}})
    with pytest.raises(ValueError, match=r"clip.rlstm has a bad 'obs_norm' header entry"):
        Predictor.load(tmp_path / "clip.rlstm")
    save_arrays(tmp_path / "list.rlstm", arrays, kind="PPO", meta={**meta, "obs_norm": [1]})
    with pytest.raises(ValueError, match=r"list.rlstm has a bad 'obs_norm' header entry"):
        Predictor.load(tmp_path / "list.rlstm")
