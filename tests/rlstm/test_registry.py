"""rlstm.registry and its use by rlstm.io: registration, lookup, size checks before allocation."""
import json
import subprocess
import sys

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
import rlstm.convlstm
import rlstm.gru
import rlstm.layers
import rlstm.lstm
import rlstm.policy.policy
import rlstm.sequence
from rlstm import io, registry
from rlstm.layers import Conv2d
from rlstm.policy import LSTMPolicy

BUILTIN = ("Conv2d", "ConvLSTM", "GRU", "LSTM", "LSTMPolicy", "Linear", "MLP", "SequenceModel")


@pytest.fixture
def private_registry(monkeypatch):
    """The registry as it is, restored after the test (there is no public unregister)."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))


class Scaler(rlstm.Module):
    """A third-party layer: ``y = x * scale + shift``."""

    def __init__(self, n, *, dtype=np.float32):
        self.n = n
        self._allocate([("scale", (n,)), ("shift", (n,))], dtype)

    def __call__(self, x):
        return x * self.params["scale"] + self.params["shift"]


def _scaler_config(m):
    return {"n": m.n, "dtype": m.dtype.name}


def _scaler_build(c, size):
    registry.need(2 * int(c["n"]) == size, "Scaler size")
    return Scaler(int(c["n"]), dtype=c["dtype"])


def builtin_instances():
    box = spaces.Box(-1, 1, (3,), np.float32)
    return {
        "Conv2d": Conv2d(2, 3, 2, 1, dtype=np.float64, seed=0),
        "ConvLSTM": rlstm.ConvLSTM(2, 3, 3, seed=0),
        "GRU": rlstm.GRU(3, 4, 2, bidirectional=True, seed=0),
        "LSTM": rlstm.LSTM(3, 4, 2, variant="peephole", forget_bias=1.0, seed=0),
        "LSTMPolicy": LSTMPolicy(box, spaces.Discrete(2), hidden_size=4, mlp_hidden=(5,),
                                 seed=0),
        "Linear": rlstm.Linear(3, 2, dtype=np.float64, seed=0),
        "MLP": rlstm.MLP(3, (4, 2), activation="relu", seed=0),
        "SequenceModel": rlstm.SequenceModel(3, 4, 2, core="gru", dtype=np.float64, seed=0),
    }


def test_every_builtin_kind_is_registered_by_import_rlstm_alone():
    code = "import rlstm; print(','.join(rlstm.registry.kinds()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert tuple(out.split(",")) == BUILTIN  # sorted, and nothing else
    assert set(BUILTIN) <= set(registry.kinds())
    assert list(registry.kinds()) == sorted(registry.kinds())


@pytest.mark.parametrize("kind", BUILTIN)
def test_describe_then_rebuild_gives_the_same_module(kind):
    obj = builtin_instances()[kind]
    obj.flat_params[...] = np.random.default_rng(1).standard_normal(obj.num_params)
    section = io.describe(obj)
    assert section["kind"] == kind and section["num_params"] == obj.num_params
    assert section["dtype"] == obj.flat_params.dtype.name
    section = json.loads(json.dumps(section))  # what a file header holds
    copy = io.rebuild(section, obj.flat_params.copy())
    assert type(copy) is type(obj) and copy is not obj
    assert io.describe(copy) == io.describe(obj)
    np.testing.assert_array_equal(copy.flat_params, obj.flat_params)
    assert not np.shares_memory(copy.flat_params, obj.flat_params)


def test_third_party_module_round_trips_once_registered(tmp_path, private_registry):
    m = Scaler(3, dtype=np.float64)
    m.flat_params[...] = [1.0, 2.0, 3.0, -1.0, 0.0, 0.5]
    with pytest.raises(TypeError, match=r"rlstm.save takes an rlstm module .*got Scaler"):
        rlstm.save(m, tmp_path / "s")
    registry.register("Scaler", _scaler_config, _scaler_build)
    assert "Scaler" in registry.kinds() and registry.lookup("Scaler") == (_scaler_config,
                                                                          _scaler_build)
    rlstm.save(m, tmp_path / "s")
    arrays, header = io.read(tmp_path / "s")
    assert header["kind"] == "Scaler" and header["config"] == {"n": 3, "dtype": "float64"}
    assert header["num_params"] == 6 and list(arrays) == ["flat_params"]
    q = rlstm.load(tmp_path / "s")
    assert type(q) is Scaler and q.n == 3 and q.dtype == np.float64
    np.testing.assert_array_equal(q(np.ones(3)), [0.0, 2.0, 3.5])
    assert rlstm.load(tmp_path / "s", kind="Scaler").n == 3
    with pytest.raises(ValueError, match="expected one of"):
        rlstm.load(tmp_path / "s", kind="LSTM")
    # registering again replaces: load now goes through the new build function
    registry.register("Scaler", _scaler_config,
                      lambda c, size: (_ for _ in ()).throw(ValueError("new build ran")))
    with pytest.raises(ValueError, match="new build ran"):
        rlstm.load(tmp_path / "s")
    assert io.register is registry.register  # the old spelling


def test_a_file_of_an_unregistered_kind_is_refused_listing_the_known_kinds(tmp_path,
                                                                          private_registry):
    registry.register("Scaler", _scaler_config, _scaler_build)
    rlstm.save(Scaler(2), tmp_path / "s")
    del registry._KINDS["Scaler"]  # a reader that never registered the third-party layer
    with pytest.raises(ValueError, match=r"holds a 'Scaler', expected one of \('Conv2d', "):
        rlstm.load(tmp_path / "s")
    arrays, header = io.read(tmp_path / "s")
    with pytest.raises(ValueError, match=r"s describes a 'Scaler', not one of \['Conv2d'"):
        io.rebuild(header, arrays["flat_params"], str(tmp_path / "s"))


def test_register_refuses_bad_arguments(private_registry):
    before = registry.kinds()
    for args in (("", _scaler_config, _scaler_build), (3, _scaler_config, _scaler_build),
                 ("X", None, _scaler_build), ("X", _scaler_config, "build")):
        with pytest.raises(TypeError, match=r"register\(kind: str"):
            registry.register(*args)
    assert registry.kinds() == before


@pytest.mark.parametrize("kind", ["Scaler", "lstm", None, ["LSTM"]])
def test_lookup_of_an_unknown_kind_lists_the_known_ones(kind):
    with pytest.raises(ValueError, match=r"is not a saveable rlstm kind; known kinds: "
                                         r"\['Conv2d', 'ConvLSTM', 'GRU', 'LSTM', "):
        registry.lookup(kind)


def test_need_and_need_recurrent():
    registry.need(True, "unused")
    with pytest.raises(ValueError, match=r"do not fit the saved parameters \(too big\)"):
        registry.need(False, "too big")
    # a GRU of H=2 over D=3 inputs has at least 3 * 2 * (3 + 2) = 30 parameters
    registry.need_recurrent({"hidden_size": 2, "num_layers": 1}, 3, 30)
    with pytest.raises(ValueError, match="recurrent layer too large"):
        registry.need_recurrent({"hidden_size": 2, "num_layers": 1}, 3, 29)
    # a second layer reads at least H features: 3 * 2 * (2 + 2) = 24 more
    registry.need_recurrent({"hidden_size": 2, "num_layers": 2}, 3, 54)
    with pytest.raises(ValueError, match="recurrent layer too large"):
        registry.need_recurrent({"hidden_size": 2, "num_layers": 2}, 3, 53)
    for config, d in (({"hidden_size": 0, "num_layers": 1}, 3),
                      ({"hidden_size": 2, "num_layers": 0}, 3),
                      ({"hidden_size": 2, "num_layers": 1}, -1)):
        with pytest.raises(ValueError, match="sizes must be >= 1"):
            registry.need_recurrent(config, d, 10 ** 6)
    registry.need_recurrent({"hidden_size": 2, "num_layers": 1}, 0, 12)  # no inputs: allowed
    assert rlstm.GRU(3, 2).num_params == 42  # the bound (30) leaves out the biases


# (kind, the module that builds it, config changes that need more parameters than given)
TOO_LARGE = [
    ("LSTM", rlstm.lstm, {"hidden_size": 10 ** 6}),
    ("LSTM", rlstm.lstm, {"hidden_size": 60}),  # fits _ints_at_most, not need_recurrent
    ("GRU", rlstm.gru, {"num_layers": 40}),
    ("Linear", rlstm.layers, {"out_features": 40}),
    ("MLP", rlstm.layers, {"hidden": [40, 40]}),
    ("Conv2d", rlstm.layers, {"kernel_size": 9}),
    ("ConvLSTM", rlstm.convlstm, {"hidden_channels": 12}),
    ("SequenceModel", rlstm.sequence, {"hidden_size": 40}),
    ("LSTMPolicy", rlstm.policy.policy, {"mlp_hidden": [60]}),
    ("LSTMPolicy", rlstm.policy.policy, {"hidden_size": 60}),
]


@pytest.mark.parametrize("kind,module,change", TOO_LARGE,
                         ids=[f"{k}-{next(iter(c))}" for k, _, c in TOO_LARGE])
def test_rebuild_refuses_sizes_that_do_not_fit_before_allocating(kind, module, change,
                                                                 monkeypatch):
    obj = builtin_instances()[kind]
    section = io.describe(obj)
    section["config"].update(change)
    flat = obj.flat_params.copy()

    def allocate(*args, **kwargs):
        raise AssertionError(f"{kind} was constructed from a header that does not fit")
    monkeypatch.setattr(module, kind, allocate)
    with pytest.raises(ValueError, match=rf"^model\.rlstm has invalid constructor arguments "
                                         rf"for {kind}: sizes in the header do not fit"):
        io.rebuild(section, flat, "model.rlstm")


def test_rebuild_refuses_a_huge_lstm_header_with_a_tiny_vector_at_once():
    section = {"kind": "LSTM", "config": {
        "input_size": 3, "hidden_size": 10 ** 6, "num_layers": 1, "bidirectional": False,
        "variant": "vanilla", "cell_activation": "tanh", "dtype": "float32"}}
    with pytest.raises(ValueError, match=r"do not fit the saved parameters \(recurrent layer "
                                         r"too large\)"):
        io.rebuild(section, np.zeros(8, np.float32))


@pytest.mark.parametrize("section,flat,match", [
    ([1, 2], np.zeros(8), "w.bin has no constructor arguments in its header"),
    ({"kind": "Linear"}, np.zeros(8), "w.bin has no constructor arguments"),
    ({"kind": "Linear", "config": "in=2"}, np.zeros(8), "no constructor arguments"),
    ({"kind": "os.system", "config": {}}, np.zeros(8),
     r"w.bin describes a 'os.system', not one of \['Conv2d'"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2, "dtype": "float64"}},
     np.zeros((2, 3)), "w.bin: the parameters must be one flat vector"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2, "dtype": "float64"}},
     [0.0] * 6, "one flat vector"),
    ({"kind": "Linear", "config": {"in_features": 2, "dtype": "float64"}}, np.zeros(6),
     "w.bin has invalid constructor arguments for Linear: 'out_features'"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2.0, "dtype": "float64"}},
     np.zeros(6), "invalid constructor arguments for Linear: out_features must be an int"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2, "dtype": "int8"}},
     np.zeros(6), "invalid constructor arguments for Linear: dtype must be"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2, "dtype": "float64"}},
     np.zeros(6, np.float32),
     r"w.bin: parameters are float32\[6\], the Linear described needs float64\[6\]"),
    ({"kind": "Linear", "config": {"in_features": 2, "out_features": 2, "dtype": "float64"}},
     np.array([0, 0, 0, 0, 0, np.inf]), "w.bin: parameters contain NaN or inf"),
])
def test_rebuild_refusals_name_the_source(section, flat, match):
    with pytest.raises(ValueError, match=match):
        io.rebuild(section, flat, "w.bin")


def test_describe_refuses_what_is_not_a_registered_module():
    with pytest.raises(TypeError, match=r"rlstm.save takes .*\['Conv2d', .*got dict"):
        io.describe({"flat_params": np.zeros(3)})

    class Linear:  # a registered kind's name on a class that is not a module
        pass
    with pytest.raises(TypeError, match="got Linear"):
        io.describe(Linear())


@pytest.mark.parametrize("make", [
    lambda: Conv2d(1, 1, 1, stride=3, seed=0),
    lambda: rlstm.LSTM(0, 4, seed=0),
], ids=["conv2d-stride-3", "lstm-input-0"])
def test_every_constructible_module_that_saves_also_loads(make, tmp_path):
    m = make()
    rlstm.save(m, tmp_path / "m")
    q = rlstm.load(tmp_path / "m")
    assert io.describe(q) == io.describe(m)
    np.testing.assert_array_equal(q.flat_params, m.flat_params)
