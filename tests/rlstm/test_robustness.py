"""The library, used the way a hostile user would: crafted files, bad settings, killed saves,
extreme numbers. Every case runs in its own process (``isolated``), so a crash or a hang fails
that case alone; the cases that could allocate a lot run under an address-space limit."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rlstm

POLICY = """
import numpy as np, rlstm
from gymnasium import spaces
from rlstm.policy import LSTMPolicy
from rlstm.serialization import load_arrays, save_arrays
p = LSTMPolicy(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), hidden_size=4, seed=0)
p.save("{d}/p.rlstm")
arrays, header = load_arrays("{d}/p.rlstm")
meta = {{k: v for k, v in header.items() if k not in ("format", "version", "kind")}}
"""


def craft(tmp_path, edit: str) -> str:
    """A case that saves a small policy, applies ``edit`` to its ``meta``/``arrays`` and loads
    the result with ``rlstm.load``."""
    return POLICY.format(d=tmp_path) + edit + (
        f'\nsave_arrays("{tmp_path}/bad.rlstm", arrays, kind=header["kind"], meta=meta)'
        f'\nrlstm.load("{tmp_path}/bad.rlstm")')


# ---------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("edit,match", [
    ('meta["config"]["observation_space"] = {"type": "Discrete", "n": 10**9, "start": 0}',
     r"do not fit the saved parameters"),
    ('meta["config"]["action_space"] = {"type": "Discrete", "n": 10**9, "start": 0}',
     r"do not fit the saved parameters \(action layer too large\)"),
    ('meta["config"]["hidden_size"] = 20000', r"do not fit the saved parameters"),
    ('meta["config"]["mlp_hidden"] = [10**6]', r"encoder too large"),
    ('meta["config"]["observation_space"] = {"type": "Box", "shape": [10**6] * 8, '
     '"dtype": "<f4", "low": {"fill": 0}, "high": {"fill": 1}}', r"malformed space"),
    ('meta["config"]["core"] = "os.system"', r"core must be one of \('lstm', 'gru'\)"),
    ('del meta["config"]["hidden_size"]', r"invalid constructor arguments .*hidden_size"),
    ('meta["config"]["hidden_size"] = "4"', r"invalid constructor arguments"),
])
def test_a_crafted_header_is_refused_before_anything_is_allocated(isolated, tmp_path, edit,
                                                                  match):
    outcome, message = isolated(craft(tmp_path, edit), memory_gib=3)
    assert outcome == "ValueError", message
    assert str(tmp_path / "bad.rlstm") in message
    import re
    assert re.search(match, message), message


def test_a_member_declaring_a_huge_shape_is_refused(isolated, tmp_path):
    code = f"""
import zipfile, numpy as np, rlstm
path = "{tmp_path}/huge.rlstm"
with zipfile.ZipFile(path, "w") as z:
    with z.open("flat_params.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {{"descr": "<f4", "fortran_order": False,
                                                  "shape": (2 ** 40,)}})
        f.write(b"\\0" * 64)
    with z.open("__header__.npy", "w") as f:
        np.lib.format.write_array(f, np.frombuffer(b'{{"format": "rlstm"}}', np.uint8))
rlstm.load(path)
"""
    outcome, message = isolated(code, memory_gib=2)
    assert outcome == "ValueError"
    assert "declares shape (1099511627776,)" in message and "but holds 64 bytes" in message


@pytest.mark.parametrize("kind,match", [("deep", "nested more than 64 levels deep"),
                                        ("huge", "header larger than 1048576 bytes")])
def test_a_deep_or_huge_json_header_is_refused(isolated, tmp_path, kind, match):
    start = '{"format": "rlstm", "version": 1, "kind": "LSTM", "x": '
    header = start + ("[" * 50_000 + "]" * 50_000 + "}" if kind == "deep" else
                      '"' + "a" * (1 << 21) + '"}')
    (tmp_path / "h.txt").write_text(header)
    code = f"""
import numpy as np, rlstm
raw = np.frombuffer(open("{tmp_path}/h.txt", "rb").read(), np.uint8)
np.savez("{tmp_path}/deep.npz", __header__=raw, flat_params=np.zeros(3, np.float32))
rlstm.load("{tmp_path}/deep.npz")
"""
    outcome, message = isolated(code)
    assert outcome == "ValueError" and match in message, message


@pytest.mark.parametrize("content", [b"# a README\nnot a model\n", b"\x93NUMPY...", b"PK\x03\x04"
                                     + b"\x00" * 30, b""])
def test_a_file_that_is_not_a_model_is_named_not_unpickled(isolated, tmp_path, content):
    (tmp_path / "x.rlstm").write_bytes(content)
    outcome, message = isolated(f'import rlstm\nrlstm.load("{tmp_path}/x.rlstm")')
    assert outcome == "ValueError", message
    assert "x.rlstm" in message and "allow_pickle" not in message
    assert "not an rlstm file" in message or "not a readable rlstm file" in message


# ---------------------------------------------------------------------------- checkpoints
def test_saving_nan_weights_keeps_the_good_file(isolated, tmp_path):
    code = POLICY.format(d=tmp_path) + f"""
p.flat_params[0] = np.nan
try:
    p.save("{tmp_path}/p.rlstm")
except ValueError as e:
    assert "NaN/inf" in str(e), e
    rlstm.load("{tmp_path}/p.rlstm")  # the good file is still there
    raise
"""
    outcome, message = isolated(code)
    assert outcome == "ValueError" and "refusing to save a LSTMPolicy with NaN/inf" in message


def test_a_killed_save_never_leaves_a_broken_file_and_its_temp_file_is_cleaned(tmp_path):
    """kill -9 a process while it saves a large model over and over: the file always loads
    (the old one or a new one), and the next save removes the dead writer's temp file."""
    code = f"""
import numpy as np, rlstm
m = rlstm.LSTM(64, 512, num_layers=3, seed=0)
while True:
    m.flat_params[:] += 1.0
    rlstm.save(m, "{tmp_path}/m.rlstm")
"""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    stale_seen = 0
    for kill_after in (0.9, 1.3, 1.7, 2.1, 2.6):
        p = subprocess.Popen([sys.executable, "-c", code], env=env)
        time.sleep(kill_after)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not (tmp_path / "m.rlstm").exists():
            continue
        m = rlstm.load(tmp_path / "m.rlstm")  # never a partial file: always one whole save
        steps = m.flat_params - rlstm.LSTM(64, 512, num_layers=3, seed=0).flat_params
        assert np.ptp(steps) < 1e-2 * max(1.0, abs(steps.mean()))  # one uniform shift
        stale_seen += len(list(tmp_path.glob(".m.rlstm.rlstm-*.tmp")))
        rlstm.save(m, tmp_path / "m.rlstm")  # the next save to that path cleans up
        assert not list(tmp_path.glob(".m.rlstm.rlstm-*.tmp"))
    assert (tmp_path / "m.rlstm").exists()
    assert stale_seen >= 1  # the kills did land mid-save, so the clean-up was exercised


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("call,outcome,match", [
    ("rlstm.SequenceModel(2, 3, 1, bidirectional='no')", "TypeError",
     r"SequenceModel.bidirectional must be a bool \(True or False\), got 'no'"),
    ("rlstm.fit(M, X, Y, weight_decay=-1)", "ValueError",
     r"TrainConfig.weight_decay must be a number >= 0, got -1"),
    ("rlstm.fit(M, X, Y, lr='abc')", "TypeError", r"TrainConfig.lr must be a number > 0"),
    ("rlstm.fit(M, X, Y, shuffle='False')", "TypeError", r"TrainConfig.shuffle must be a bool"),
    ("rlstm.fit(M, X, Y, epoch=3)", "TypeError", r"did you mean 'epochs'"),
    ("rlstm.optim.Adam(M, weight_decay=float('nan'))", "ValueError",
     r"Adam.weight_decay must be a number >= 0, got nan"),
    ("rlstm.optim.Adam(M, lr=float('inf'))", "ValueError", r"Adam.lr must be a number > 0"),
    ("rlstm.fit(M, X, Y, lr=np.float32(0.01), epochs=1)", "ok", ""),
    ("import warnings; warnings.simplefilter('ignore'); rlstm.fit(M, X, Y, lr=1e30, epochs=3)",
     "TrainingDiverged", r"fit diverged at epoch \d: .* keeps its last finite parameters"),
    ("o = rlstm.optim.Adam(M); s = o.state_dict(); s['t'] = np.asarray(-1); "
     "o.load_state_dict(s)", "ValueError", r"impossible step count -1"),
    ("o = rlstm.optim.Adam(M); s = o.state_dict(); s['v'] = -np.ones_like(s['v']); "
     "o.load_state_dict(s)", "ValueError", r"'v' .* has negative entries"),
])
def test_bad_settings_name_the_field_and_nothing_is_coerced(isolated, call, outcome, match):
    import re
    code = f"""
import numpy as np, rlstm
M = rlstm.SequenceModel(2, 8, 1, seed=0)
X, Y = np.random.default_rng(0).normal(size=(20, 8, 2)), np.zeros((20, 8, 1))
{call}
"""
    got, message = isolated(code)
    assert got == outcome, message
    assert re.search(match, message), message


def test_fit_divergence_leaves_finite_parameters(isolated):
    code = """
import warnings, numpy as np, rlstm
warnings.simplefilter("ignore")
M = rlstm.SequenceModel(2, 8, 1, seed=0)
X, Y = np.random.default_rng(0).normal(size=(20, 8, 2)), np.zeros((20, 8, 1))
try:
    rlstm.fit(M, X, Y, lr=1e30, epochs=3)
except rlstm.TrainingDiverged:
    assert np.isfinite(M.flat_params).all()
"""
    assert isolated(code) == ("ok", "")


# ---------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("value", [1e6, 1e8, -1e8])
def test_ctc_at_extreme_float32_logits_is_exact(isolated, value):
    code = f"""
import numpy as np, rlstm
x = np.full((10, 1, 5), {value}, np.float32)
loss, grad = rlstm.ctc_loss(x, np.array([[1, 2]]), np.array([10]), np.array([2]))
want, _ = rlstm.ctc_loss(np.zeros((10, 1, 5)), np.array([[1, 2]]), np.array([10]),
                         np.array([2]))
assert abs(loss[0] - want[0]) < 1e-5 * want[0] and loss[0] > 0, (loss, want)
"""
    assert isolated(code) == ("ok", "")
