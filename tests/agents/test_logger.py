"""The run logger: TensorBoard scalars when a writer exists."""
from agents import PPO


def test_tensorboard_scalars_are_written_when_a_writer_exists(tmp_path, monkeypatch, tiny):
    calls = []

    class FakeWriter:
        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append("closed")

    import agents.logger as logger_module
    monkeypatch.setattr(logger_module, "_tensorboard_writer", lambda log_dir: FakeWriter())
    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **tiny).learn(32)
    m.close()
    steps = sorted({c[2] for c in calls if c != "closed"})
    assert steps == [16, 32] and calls[-1] == "closed"
    tags = {c[0] for c in calls if c != "closed"}
    assert {"loss", "value_loss", "fps", "learning_rate"} <= tags
    without = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path / "b"), tensorboard=False, **tiny)
    assert without.logger._tb is None
