"""What an exporter reads from a model (rlstm.export.ExportPlan), and what it refuses."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.export import ExportPlan
from rlstm.policy import LSTMPolicy, Predictor

BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)


def test_plan_of_a_dict_policy(make_case):
    plan = ExportPlan(make_case("dict-obs-mask-dict-action-normalised"))
    # obs: action_mask 6, flags 3, grid 2, mode 1, pos 3 (keys sorted)
    assert plan.n_obs == 15 and plan.mask.start == 0 and plan.mask.size == 6
    assert [(p.path, f) for p, f in plan.plain] == [(("flags",), 0), (("grid",), 3),
                                                    (("mode",), 8), (("pos",), 12)]
    assert plan.feature_dim == 15  # 3 bits + one-hot 2 + 3 + one-hot 4 + 3 floats
    # action: move (1), pick (2), throttle (2)
    assert plan.n_action == 5
    assert plan.discrete_columns().tolist() == [True, True, True, False, False]
    assert [(h.kind, h.groups) for h in plan.heads[:2]] == [
        ("discrete", [(0, 2, 0)]), ("multidiscrete", [(0, 3, 0), (3, 1, 0)])]
    assert plan.state_shape == (4, 1, 16)  # h, c of the core and of the critic core
    text = "\n".join(plan.describe())
    assert "obs[0:6]  obs['action_mask']" in text and "critic_core: LSTM vanilla" in text


def test_without_the_value_the_critic_core_is_dropped(make_case):
    pred = make_case("gru-stacked-critic-mlp")
    full, lean = ExportPlan(pred), ExportPlan(pred, include_value=False)
    assert full.state_shape == (2, 2, 16) and len(full.cores) == 2 and full.value_core == 1
    assert lean.state_shape == (1, 2, 16) and len(lean.cores) == 1 and lean.value_layer is None
    state = pred.policy.initial_state(3)
    assert lean.policy_state(state).shape == (1, 2, 3, 16)


def test_normaliser_and_weights_are_read_as_they_are(make_case):
    pred = make_case("lstm-box-normalised")
    plan = ExportPlan(pred)
    mean, std, clip = plan.normalize
    np.testing.assert_array_equal(mean, pred.obs_normalizer.mean)
    np.testing.assert_array_equal(std, pred.obs_normalizer.std)
    assert clip == 3.0
    assert plan.cores[0].layers[0].w_ih is pred.policy.core.params["weight_ih_l0"]


def test_refusals():
    with pytest.raises(ValueError, match="only float32 and float64 Box actions"):
        ExportPlan(LSTMPolicy(BOX, spaces.Box(-1, 1, (2,), np.float16), hidden_size=4))
    with pytest.raises(ValueError, match="beyond 2\\*\\*24"):
        ExportPlan(LSTMPolicy(spaces.Discrete(3, start=2 ** 25), spaces.Discrete(2),
                              hidden_size=4))
    with pytest.raises(ValueError, match="beyond 2\\*\\*24"):
        ExportPlan(LSTMPolicy(BOX, spaces.MultiDiscrete([2], start=[-2 ** 25]), hidden_size=4))
    masked = spaces.Dict({"x": BOX, "action_mask": spaces.MultiBinary(2)})
    with pytest.raises(ValueError, match="no Discrete or MultiDiscrete part"):
        ExportPlan(LSTMPolicy(masked, spaces.Box(-1, 1, (2,), np.float32), hidden_size=4))
    with pytest.raises(ValueError, match="has 2 entries but the action heads need 3"):
        ExportPlan(LSTMPolicy(masked, spaces.Discrete(3), hidden_size=4))

    class MyLSTM(rlstm.LSTM):
        pass
    with pytest.raises(ValueError, match="core is a MyLSTM; only rlstm.LSTM and rlstm.GRU"):
        ExportPlan(LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=4, core=MyLSTM))
    with pytest.raises(TypeError, match="include_value must be a bool"):
        ExportPlan(Predictor(LSTMPolicy(BOX, spaces.Discrete(2), hidden_size=4)),
                   include_value="yes")
