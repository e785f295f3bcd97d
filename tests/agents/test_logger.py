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


def test_the_learning_curve_says_what_it_plots(tmp_path, monkeypatch, tiny, small):
    """Policy gradient plots the mean of the last 100 training episodes, evolution the
    population's mean per generation; the legend and the title say which and on what env."""
    from matplotlib.figure import Figure

    from agents import OpenAIES

    drawn = []

    def savefig(fig, path, **kwargs):
        ax = fig.axes[0]
        drawn.append((ax.get_title(), ax.get_legend().get_texts()[0].get_text()))
    monkeypatch.setattr(Figure, "savefig", savefig)
    PPO("CartPole-v1", seed=0, log_dir=str(tmp_path / "pg"), tensorboard=False,
        **tiny).learn(16).close()
    OpenAIES("CartPole-v1", seed=0, backend="serial", log_dir=str(tmp_path / "es"),
             tensorboard=False, **small).learn(1).close()
    assert drawn == [("PPO on CartPole-v1", "training episodes (mean of last 100)"),
                     ("OpenAIES on CartPole-v1", "population mean return (per generation)")]
