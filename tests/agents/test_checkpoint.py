"""agents.checkpoint: generator states that continue the same stream, and read() refusing every
file that is not a trainer file of the kind asked for."""
import numpy as np
import pytest
from gymnasium import spaces

from agents import A2C
from agents.checkpoint import read, rng_from_array, rng_to_array, write
from rlstm.policy import LSTMPolicy


def draws(rng):
    """One of each kind of draw (64-bit, buffered 32-bit, floats, normals)."""
    return (rng.integers(0, 2 ** 62, 3).tolist(),
            rng.integers(0, 1000, 3, dtype=np.int32).tolist(),
            rng.random(3).tolist(), rng.standard_normal(3).tolist(),
            rng.random(3, dtype=np.float32).tolist())


@pytest.mark.parametrize("buffered", [False, True])
def test_generator_state_round_trip_continues_the_same_stream(buffered, tmp_path):
    rng = np.random.default_rng(2024)
    draws(rng)
    if buffered:  # leave half of a 64-bit word buffered for the next 32-bit draw
        rng.integers(0, 10, dtype=np.int32)
    assert rng.bit_generator.state["has_uint32"] == int(buffered)
    a = rng_to_array(rng)
    assert a.dtype == np.uint64 and a.shape == (6,)
    assert a[1] != 0 and a[3] != 0  # the high 64 bits of the 128-bit state and increment
    write(tmp_path / "t.rlstm", "PPO", {"trainer/rng": a}, {"trainer": {}, "policy": {}})
    arrays, _ = read(tmp_path / "t.rlstm", "PPO")
    copy = rng_from_array(arrays["trainer/rng"])
    assert copy.bit_generator.state == rng.bit_generator.state
    assert draws(copy) == draws(rng)
    assert copy.bit_generator.state == rng.bit_generator.state


def test_generator_state_refusals():
    with pytest.raises(ValueError, match="only PCG64 generators can be checkpointed"):
        rng_to_array(np.random.Generator(np.random.MT19937(0)))
    good = rng_to_array(np.random.default_rng(0))
    for bad in (good[:5], good.astype(np.float64), good.reshape(2, 3), np.array(["1"] * 6)):
        with pytest.raises(ValueError, match="a generator state must be 6 integers"):
            rng_from_array(bad)
    assert rng_from_array(good.astype(np.int64)).random() == np.random.default_rng(0).random()


def test_write_then_read_gives_the_arrays_and_header_back(tmp_path):
    arrays = {"policy/flat_params": np.arange(4.0), "algo/optim/m": np.ones(4, np.float32)}
    header = {"trainer": {"algorithm": "PPO", "num_timesteps": 32},
              "policy": {"kind": "LSTMPolicy"}, "obs_norm": None}
    write(tmp_path / "m.rlstm", "PPO", arrays, header)
    got, head = read(tmp_path / "m.rlstm", "PPO")
    assert sorted(got) == sorted(arrays) and got["algo/optim/m"].dtype == np.float32
    np.testing.assert_array_equal(got["policy/flat_params"], arrays["policy/flat_params"])
    assert head["kind"] == "PPO" and head["trainer"] == header["trainer"]
    assert head["policy"] == header["policy"] and head["obs_norm"] is None


def test_read_refuses_other_files_naming_them(tmp_path):
    LSTMPolicy(spaces.Box(-1, 1, (4,)), spaces.Discrete(2), hidden_size=4, seed=0).save(
        tmp_path / "policy.rlstm")
    with pytest.raises(ValueError, match=r"policy.rlstm holds a 'LSTMPolicy', expected one of "
                                         r"\('PPO',\)"):
        read(tmp_path / "policy.rlstm", "PPO")
    A2C("CartPole-v1", seed=0, n_envs=1, n_steps=4, hidden_size=4).save(tmp_path / "a2c.rlstm")
    read(tmp_path / "a2c.rlstm", "A2C")  # its own kind reads
    with pytest.raises(ValueError, match=r"a2c.rlstm holds a 'A2C', expected one of "
                                         r"\('PPO',\)"):
        read(tmp_path / "a2c.rlstm", "PPO")
    for missing in ("trainer", "policy"):
        header = {"trainer": {"algorithm": "PPO"}, "policy": {"kind": "LSTMPolicy"}}
        header[missing] = None
        write(tmp_path / f"no_{missing}.rlstm", "PPO", {"x": np.zeros(1)}, header)
        with pytest.raises(ValueError, match=rf"no_{missing}.rlstm is not a PPO trainer file: "
                                             rf"its header has no '{missing}' section"):
            read(tmp_path / f"no_{missing}.rlstm", "PPO")
    (tmp_path / "junk.rlstm").write_bytes(b"PK\x03\x04 not really a zip")
    # damaged and foreign files: the file format's own refusals, naming the file
    with pytest.raises(ValueError, match=r"junk\.rlstm .*rlstm file"):
        read(tmp_path / "junk.rlstm", "PPO")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"array\.npy .*rlstm file"):
        read(tmp_path / "array.npy", "PPO")
    with pytest.raises(FileNotFoundError, match="missing.rlstm"):
        read(tmp_path / "missing.rlstm", "PPO")
