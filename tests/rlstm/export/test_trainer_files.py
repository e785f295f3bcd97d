"""Every registered trainer's saved file exports to ONNX and C that act as its predict does."""
from __future__ import annotations

import numpy as np
import pytest

import agents
from agents.es import EvolutionTrainer
from rlstm.export import check, to_c, to_onnx

pytest.importorskip("onnxruntime")


def _small(cls) -> dict:
    if issubclass(cls, EvolutionTrainer):
        return dict(population_size=10, center_episodes=1, max_episode_steps=30,
                    noise_table_size=100_000, backend="serial", hidden_size=8)
    return dict(n_envs=2, n_steps=8, seq_len=4, hidden_size=8)


@pytest.mark.parametrize("name", sorted(agents.TRAINERS))
@pytest.mark.parametrize("env", ["CartPole-v1", "rlstm/PendulumNoVel-v1"])
def test_a_saved_trainer_exports_and_checks(name, env, tmp_path):
    cls = agents.TRAINERS[name]
    model = cls(env, seed=0, **_small(cls)).learn(60)
    model.save(tmp_path / "model.rlstm")
    onnx_path = to_onnx(tmp_path / "model.rlstm", tmp_path / "model.onnx")
    _, c_path = to_c(tmp_path / "model.rlstm", tmp_path / "model")
    for artefact in (onnx_path, c_path):
        report = check(tmp_path / "model.rlstm", artefact, env=env, steps=300)
        assert report.ok, str(report)
        assert report.action_mismatches == 0
    # the file's predictor is the trainer's own
    obs = np.stack([model.observation_space.sample() for _ in range(3)])
    loaded = cls.load(tmp_path / "model.rlstm")
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0],
                                  loaded.predict(obs, deterministic=True)[0])
    model.close()
