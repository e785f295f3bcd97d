"""rlstm.cores: core names to layer classes and back, and what is refused as a core."""
import numpy as np
import pytest

import rlstm
from rlstm.cores import CORES, core_class, core_name


class Elman(rlstm.Module):
    """A third-party recurrent layer: ``h_t = tanh(W x_t + U h_{t-1} + b)``, one layer."""

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False,
                 dtype=np.float32, seed=None):
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, 1
        self._allocate([("weight_ih_l0", (hidden_size, input_size)),
                        ("weight_hh_l0", (hidden_size, hidden_size)),
                        ("bias_l0", (hidden_size,))], dtype)
        self.flat_params[...] = np.random.default_rng(seed).uniform(-0.5, 0.5,
                                                                     self.num_params)

    def initial_state(self, batch_size):
        return np.zeros((1, batch_size, self.hidden_size), self.dtype)

    def step(self, x, h=None):
        h = self.initial_state(x.shape[0]) if h is None else h
        p = self.params
        hn = np.tanh(x @ p["weight_ih_l0"].T + h[0] @ p["weight_hh_l0"].T + p["bias_l0"])
        return hn, hn[None]

    def __call__(self, x, h=None, resets=None):
        ys = []
        for t in range(x.shape[0]):  # a test double: the loop is fine here
            y, h = self.step(x[t], h)
            ys.append(y)
        return np.stack(ys), h

    def forward(self, x, h=None, resets=None):
        y, h = self(x, h)
        return y, h, None

    def backward(self, dy, cache, dstate=None):  # pragma: no cover - not trained here
        raise NotImplementedError


def test_names_map_to_the_rlstm_layers_and_back():
    assert CORES == {"lstm": rlstm.LSTM, "gru": rlstm.GRU}
    assert core_class("lstm") is rlstm.LSTM and core_class("gru") is rlstm.GRU
    for name, cls in CORES.items():
        assert core_name(cls) == name
        assert core_class(core_name(cls)) is cls


def test_a_recurrent_layer_class_is_taken_as_it_is():
    assert core_class(rlstm.LSTM) is rlstm.LSTM
    assert core_class(Elman) is Elman
    assert core_name(Elman) == "Elman"
    m = rlstm.SequenceModel(2, 3, 1, core=Elman, seed=0)
    assert type(m.core) is Elman and m.core_type == "Elman"
    assert list(m.params)[:3] == ["core.weight_ih_l0", "core.weight_hh_l0", "core.bias_l0"]


@pytest.mark.parametrize("core", ["LSTM", "Gru", "transformer", ""])
def test_unknown_names_are_refused_with_the_choices(core):
    with pytest.raises(ValueError, match=rf"core must be one of \('lstm', 'gru'\), got "
                                         rf"'{core}'"):
        core_class(core)


class NotAModule:
    def step(self, x, h=None):
        return x, h


@pytest.mark.parametrize("core", [
    rlstm.Linear,            # an rlstm Module, but not recurrent (no step)
    NotAModule,              # has step, but is not an rlstm Module
    rlstm.LSTM(2, 3),        # an instance, not a class
    None, 3, ("lstm",),
], ids=["module-without-step", "not-a-module", "instance", "none", "int", "tuple"])
def test_what_is_not_a_recurrent_layer_class_is_refused(core):
    with pytest.raises(TypeError, match="core must be 'lstm', 'gru' or an rlstm recurrent "
                                        "layer class with forward/backward/step, got"):
        core_class(core)


def test_a_model_on_a_custom_core_that_saves_also_loads(tmp_path, monkeypatch):
    from rlstm import registry
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    registry.register("Elman", lambda m: {"input_size": m.input_size,
                                          "hidden_size": m.hidden_size},
                      lambda c, size: Elman(c["input_size"], c["hidden_size"]))
    m = rlstm.SequenceModel(2, 3, 1, core=Elman, dtype=np.float64, seed=0)
    try:
        rlstm.save(m, tmp_path / "m")
    except (TypeError, ValueError):
        return  # refusing up front is a fix too: no file that cannot be read
    q = rlstm.load(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    np.testing.assert_array_equal(q.predict(x), m.predict(x))
