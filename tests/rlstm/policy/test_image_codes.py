"""``image_codes``: images of codes (MiniGrid's object, colour and state) one-hot per channel
inside the policy, as MiniGrid's ``OneHotPartialObsWrapper`` does outside it."""
import ctypes
import re

import gymnasium as gym
import numpy as np
import pytest

import rlstm
from rlstm.policy import LSTMPolicy
from rlstm.policy.spaces import Encoder, check_image_codes
from rlstm.population import PopulationPolicy

CODES = [11, 6, 3]
IMG = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
DICT = gym.spaces.Dict({"direction": gym.spaces.Discrete(4), "image": IMG})


def _codes_obs(rng, n, shape=(7, 7, 3), codes=CODES):
    return np.floor(rng.random((n,) + shape) * np.asarray(codes)).astype(np.uint8)


def test_each_channel_becomes_a_one_hot_block_per_pixel():
    space = gym.spaces.Box(0, 255, (1, 2, 2), np.uint8)
    enc = Encoder(space, np.float32, image_codes=[3, 2])
    assert enc.dim == 2 * (3 + 2)
    x = enc(np.array([[[[2, 0], [1, 1]]]], np.uint8), (1,))
    #                pixel 0: code 2 of 3, code 0 of 2 | pixel 1: code 1 of 3, code 1 of 2
    np.testing.assert_array_equal(x, [[0, 0, 1, 1, 0, 0, 1, 0, 0, 1]])


def test_a_time_by_batch_lead_encodes_each_observation_as_alone():
    enc = Encoder(DICT, np.float32, image_codes=CODES)
    rng = np.random.default_rng(5)
    obs = {"direction": rng.integers(4, size=(2, 3)), "image": _codes_obs(rng, 6).reshape(
        (2, 3) + IMG.shape)}
    x = enc(obs, (2, 3))
    for t in range(2):
        for b in range(3):
            one = enc({"direction": obs["direction"][t, b:b + 1],
                       "image": obs["image"][t, b:b + 1]}, (1,))
            np.testing.assert_array_equal(x[t * 3 + b], one[0])
    assert x[:, 4:].reshape(6, 49, 20).sum(axis=2).min() == 3  # one code per channel


def test_the_encoding_is_minigrids_one_hot_wrapper():
    pytest.importorskip("minigrid")
    from minigrid.wrappers import OneHotPartialObsWrapper
    env = gym.make("MiniGrid-MemoryS7-v0")
    ref = OneHotPartialObsWrapper(gym.make("MiniGrid-MemoryS7-v0"))
    keys = DICT.spaces
    policy = LSTMPolicy(gym.spaces.Dict({k: env.observation_space[k] for k in keys}),
                        env.action_space, 8, seed=0, image_codes=CODES)
    o, _ = env.reset(seed=5)
    r, _ = ref.reset(seed=5)
    for step in range(12):
        x = policy.inputs.encode({"direction": np.array([o["direction"]]),
                                  "image": o["image"][None]}, (1,))
        assert x.shape == (1, 4 + 7 * 7 * 20)
        np.testing.assert_array_equal(x[0, 4:], r["image"].reshape(-1), err_msg=f"step {step}")
        a = [2, 0, 2, 1, 2][step % 5]
        o, *_ = env.step(a)
        r, *_ = ref.step(a)


def test_the_conv_net_reads_one_channel_per_code_and_image_scale_is_not_used():
    p = LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES)
    q = LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES, image_scale=None)
    assert p.inputs.image_nets[0].image_shape == (7, 7, 20)
    assert p.obs_dim == 4 + 7 * 7 * 20
    obs = {"direction": np.array([1, 3]), "image": _codes_obs(np.random.default_rng(0), 2)}
    np.testing.assert_array_equal(p.inputs.encode(obs, (2,)), q.inputs.encode(obs, (2,)))
    flat = LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES,
                      image_encoder="flatten")
    assert flat.feature_dim == 4 + 7 * 7 * 20


@pytest.mark.parametrize("codes,err,match", [
    ([11, 6], ValueError, "3 .shape"),                 # one number per channel
    ([], ValueError, "at least one"),
    ("11,6,3", TypeError, "list of whole numbers"),
    (11, TypeError, "list of whole numbers"),
    ([11, 6, 2.5], TypeError, "whole numbers"),
    ([11, True, 3], TypeError, "whole numbers"),
    ([11, 0, 3], ValueError, "1..256"),
    ([11, 6, 257], ValueError, "1..256"),
])
def test_bad_image_codes_are_refused_by_name(codes, err, match):
    with pytest.raises(err, match=match):
        LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, image_codes=codes)


def test_image_codes_without_an_image_part_is_refused():
    with pytest.raises(ValueError, match="has none"):
        LSTMPolicy(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2),
                   image_codes=[3])


def test_a_code_outside_its_channel_is_refused_with_the_channel_named():
    p = LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES)
    img = _codes_obs(np.random.default_rng(1), 2)
    img[1, 3, 4, 1] = 6                                   # colour: 0..5
    with pytest.raises(ValueError, match=r"code 6 in channel 1, outside 0..5"):
        p.act({"direction": np.array([0, 1]), "image": img}, p.initial_state(2),
              np.ones(2, bool))
    img = img[:1].astype(np.float32)
    img[0, 0, 0, 0] = 2.5                                 # codes are whole numbers
    with pytest.raises(ValueError, match="integer codes"):
        p.inputs.encode({"direction": np.array([0]), "image": img}, (1,))
    assert check_image_codes(np.array([4, 2])) == (4, 2)


def test_saved_and_loaded_it_keeps_its_codes_and_acts_the_same(tmp_path):
    p = LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES)
    rlstm.save(p, tmp_path / "p")
    q = rlstm.load(tmp_path / "p")
    assert q.image_codes == tuple(CODES) and q.config()["image_codes"] == CODES
    obs = {"direction": np.array([1, 3]), "image": _codes_obs(np.random.default_rng(2), 2)}
    a = p.act(obs, p.initial_state(2), np.ones(2, bool), deterministic=True)
    b = q.act(obs, q.initial_state(2), np.ones(2, bool), deterministic=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert "image_codes" not in LSTMPolicy(DICT, gym.spaces.Discrete(3), 8).config()


def test_the_population_evaluator_encodes_codes_as_the_policy_does():
    template = LSTMPolicy(DICT, gym.spaces.Discrete(3), hidden_size=6, seed=0,
                          image_codes=CODES)
    P, B = 3, 2
    rng = np.random.default_rng(3)
    params = rng.normal(0, 0.7, (P, template.num_params)).astype(template.dtype)
    obs = {"direction": rng.integers(4, size=P * B), "image": _codes_obs(rng, P * B)}
    pop = PopulationPolicy(template, params, batch_per_member=B)
    acts, _ = pop.act(obs, pop.initial_state(), np.ones(P * B, bool))
    for p in range(P):
        template.flat_params[...] = params[p]
        rows = slice(p * B, (p + 1) * B)
        want = template.act({k: v[rows] for k, v in obs.items()}, template.initial_state(B),
                            np.ones(B, bool), deterministic=True)[0]
        np.testing.assert_array_equal(np.asarray(acts)[rows], want)


def test_the_c_artefact_refuses_a_code_out_of_range_as_predict_does(tmp_path):
    from rlstm.export import flatten_observation, to_c
    from rlstm.export.check import compile_c
    from rlstm.policy import Predictor
    pred = Predictor(LSTMPolicy(DICT, gym.spaces.Discrete(3), 8, seed=0, image_codes=CODES))
    h_file, c_file = to_c(pred, tmp_path)
    lib = ctypes.CDLL(str(compile_c(c_file, tmp_path / "lib.so", shared=True)))
    work = int(re.search(r"#define POLICY_WORK_SIZE (\d+)", h_file.read_text()).group(1))
    from rlstm.export import ExportPlan
    n_state = int(np.prod(ExportPlan(pred).state_shape))
    buf = np.zeros(n_state + 1 + work, np.float32)
    lib.policy_reset(buf.ctypes.data_as(ctypes.c_void_p))
    good = {"direction": np.int64(2), "image": _codes_obs(np.random.default_rng(4), 1)[0]}

    def step(obs):
        flat = np.ascontiguousarray(flatten_observation(DICT, obs), np.float32)
        action = np.full(1, 7.0, np.float32)
        rc = lib.policy_step(buf.ctypes.data_as(ctypes.c_void_p),
                             flat.ctypes.data_as(ctypes.c_void_p),
                             action.ctypes.data_as(ctypes.c_void_p))
        return rc, action

    rc, action = step(good)
    want, _ = pred.predict({"direction": np.array([2]), "image": good["image"][None]},
                           deterministic=True)
    assert rc == 0 and action[0] == want[0]
    before = buf[:n_state].copy()
    bad = good["image"].copy()
    bad[0, 0, 2] = 3                                      # state: 0..2
    rc, action = step({**good, "image": bad})
    assert rc == 1 and action[0] == 7.0 and np.array_equal(buf[:n_state], before)
    with pytest.raises(ValueError, match="channel 2"):
        pred.predict({"direction": np.array([2]), "image": bad[None]}, deterministic=True)
