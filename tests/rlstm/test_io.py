"""rlstm.save / rlstm.load: exact round trips, and broken or malicious files rejected."""
import json
import os

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.policy import LSTMPolicy
from rlstm.serialization import HEADER_KEY

OBS = spaces.Dict({"pos": spaces.Box(np.array([-1, -np.inf], np.float32),
                                     np.array([1, np.inf], np.float32)),
                   "inv": spaces.Tuple((spaces.Discrete(3, start=2), spaces.MultiBinary((2, 2)))),
                   "md": spaces.MultiDiscrete([2, 5]),
                   "action_mask": spaces.MultiBinary(4)})
ACT = spaces.Tuple((spaces.Discrete(4), spaces.Box(-2, 2, (2,), np.float64)))


def make_policy(**kw):
    return LSTMPolicy(OBS, ACT, hidden_size=6, seed=3, mlp_hidden=(5,), shared_core=False,
                      log_std_init=-0.5, **kw)


def obs_batch(B, rng):
    return {"pos": rng.standard_normal((B, 2)).astype(np.float32),
            "inv": (rng.integers(2, 5, B), rng.integers(0, 2, (B, 2, 2))),
            "md": np.stack([rng.integers(0, 2, B), rng.integers(0, 5, B)], 1),
            "action_mask": np.ones((B, 4), bool)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_policy_round_trip_exact(tmp_path, dtype):
    p = make_policy(dtype=dtype)
    p.flat_params[...] += np.random.default_rng(0).standard_normal(p.num_params) * 0.1
    path = tmp_path / "policy.rlstm"
    p.save(path)
    q = LSTMPolicy.load(path)
    assert q.flat_params.dtype == p.flat_params.dtype
    np.testing.assert_array_equal(q.flat_params, p.flat_params)
    assert q.observation_space == p.observation_space and q.action_space == p.action_space
    assert q.config() == p.config()
    assert list(q.params) == list(p.params)
    obs = obs_batch(4, np.random.default_rng(1))
    ra = p.act(obs, None, None, rng=np.random.default_rng(5))
    rb = q.act(obs, None, None, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(ra[0][0], rb[0][0])
    np.testing.assert_array_equal(ra[0][1], rb[0][1])
    np.testing.assert_array_equal(ra[1], rb[1])
    np.testing.assert_array_equal(ra[2], rb[2])
    assert not any(n.startswith(".rlstm-") for n in os.listdir(tmp_path))  # no temp left


def test_layer_round_trips(tmp_path):
    for m in (rlstm.LSTM(3, 4, 2, variant="peephole", dtype=np.float64, seed=0),
              rlstm.LSTM(3, 4, bidirectional=True, cell_activation="identity", seed=1),
              rlstm.Linear(3, 2, seed=0), rlstm.MLP(3, (4, 2), activation="relu", seed=0),
              rlstm.layers.Conv2d(2, 3, 3, 2, dtype=np.float64, seed=0)):
        rlstm.save(m, tmp_path / "m")
        q = rlstm.load(tmp_path / "m")
        assert type(q) is type(m)
        np.testing.assert_array_equal(q.flat_params, m.flat_params)
        assert list(q.params) == list(m.params)
    with pytest.raises(ValueError, match="expected one of"):
        LSTMPolicy.load(tmp_path / "m")
    with pytest.raises(TypeError, match="rlstm module"):
        rlstm.save(object(), tmp_path / "x")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    p = make_policy()
    path = tmp_path / "p.rlstm"
    p.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        p.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.rlstm"]


def rewrite(path, out, header=None, arrays=None, drop_header=False):
    """Copy an rlstm file, changing its header (a dict) and/or arrays."""
    with np.load(path, allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    h = json.loads(data[HEADER_KEY].tobytes())
    if header is not None:
        h = header(h)
    data[HEADER_KEY] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    if drop_header:
        del data[HEADER_KEY]
    if arrays is not None:
        data = arrays(data)
    with open(out, "wb") as f:
        np.savez(f, **data)


def test_broken_and_malicious_files_rejected(tmp_path):
    p = make_policy()
    good = tmp_path / "good.rlstm"
    p.save(good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.rlstm"

    def rejects(match):
        with pytest.raises(ValueError, match=match):
            rlstm.load(bad)

    bad.write_bytes(raw[: len(raw) // 2])                       # truncated
    rejects("not a readable rlstm file")
    bad.write_bytes(b"\x00" * 100)                               # not a zip
    rejects("is not an rlstm file")
    bad.write_bytes(raw.replace(b'"LSTMPolicy"', b'"LSTMPolicX"'))  # tampered bytes (CRC)
    rejects("rlstm")
    rewrite(good, bad, drop_header=True)                         # plain npz
    rejects("no header")
    rewrite(good, bad, header=lambda h: {**h, "version": 99})
    rejects("version 99")
    rewrite(good, bad, header=lambda h: {**h, "format": "other"})
    rejects("not an rlstm file")
    rewrite(good, bad, header=lambda h: {**h, "kind": "os.system"})
    rejects("expected one of")
    rewrite(good, bad, header=lambda h: {**h, "config": {**h["config"], "hidden_size": 10 ** 9}})
    rejects("do not fit")
    rewrite(good, bad, header=lambda h: {**h, "config": {**h["config"], "core": "evil"}})
    rejects("invalid constructor arguments")
    rewrite(good, bad, header=lambda h: {**h, "config": {**h["config"], "rm_rf": True}})
    rejects("invalid constructor arguments")
    rewrite(good, bad, header=lambda h: {**h, "config": {
        **h["config"], "action_space": {"type": "Box", "shape": [10 ** 6] * 8}}})
    rejects("invalid constructor arguments")
    rewrite(good, bad, header=lambda h: {**h, "config": {
        **h["config"], "observation_space": {"type": "Pickle", "payload": "..."}}})
    rejects("invalid constructor arguments")
    rewrite(good, bad, arrays=lambda d: {**d, "flat_params": d["flat_params"][:-1]})
    rejects("parameters are")
    rewrite(good, bad, arrays=lambda d: {**d, "flat_params": d["flat_params"].astype(np.float64)})
    rejects("parameters are")
    rewrite(good, bad, arrays=lambda d: {**d, "flat_params": np.full_like(d["flat_params"],
                                                                          np.nan)})
    rejects("NaN")
    rewrite(good, bad, arrays=lambda d: {**d, "extra": np.zeros(2)})
    rejects("exactly one array")
    # an object array (what a pickle payload would need) is refused by allow_pickle=False
    with open(bad, "wb") as f:
        np.savez(f, flat_params=np.array([print], dtype=object),
                 **{HEADER_KEY: np.frombuffer(raw[:0], np.uint8)})
    rejects("rlstm")
    with pytest.raises(FileNotFoundError):
        rlstm.load(tmp_path / "missing.rlstm")
    # the good file still loads
    np.testing.assert_array_equal(rlstm.load(good).flat_params, p.flat_params)


def test_random_byte_damage_is_a_value_error(tmp_path):
    p = make_policy()
    good = tmp_path / "good.rlstm"
    p.save(good)
    raw = good.read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.rlstm"
    for _ in range(300):
        b = bytearray(raw)
        for i in rng.integers(0, len(b), rng.integers(1, 4)):
            b[i] = rng.integers(256)
        if rng.random() < 0.2:
            b = b[:rng.integers(len(b))]
        bad.write_bytes(bytes(b))
        try:
            q = rlstm.load(bad)
        except ValueError:
            continue
        # damage the zip checks cannot see (timestamps, padding) leaves the content intact
        np.testing.assert_array_equal(q.flat_params, p.flat_params)
