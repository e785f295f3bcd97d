"""The settings every trainer shares, and the one way a trainer's config is built and checked.

A trainer's config is a dataclass: each field has a type annotation, which says what it takes
(checked by :func:`rlstm.validation.check_config`: a bool field takes only a bool, a number
field refuses strings, None and NaN, NumPy scalars are accepted as numbers), and a docstring,
which says what it does. Bounds are ``Annotated[float, Range(...)]``; rules between fields go in
:meth:`TrainerConfig.check`. :func:`make_config` applies keyword overrides to a config and
refuses unknown names with the list of valid ones and the nearest match.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Literal

from rlstm.validation import Range, check_config, unknown_keys_error

__all__ = ["TrainerConfig", "make_config", "Range"]

AtLeast1 = Annotated[int, Range(1)]


@dataclass
class TrainerConfig:
    """Settings every trainer shares (policy gradient and evolution alike)."""

    hidden_size: AtLeast1 = 64
    """LSTM units of the policy core."""
    num_layers: AtLeast1 = 1
    """Stacked LSTM layers of the policy core."""
    mlp_hidden: tuple[AtLeast1, ...] = ()
    """Sizes of an MLP encoder (tanh) before the LSTM (``()``: none)."""
    head_hidden: tuple[AtLeast1, ...] = ()
    """Sizes of the tanh MLPs after the LSTM, one for the action layer and one for the value
    head, each with its own weights (``()``: none, both read the LSTM output). sb3-contrib's
    ``net_arch=dict(pi=[64, 64], vf=[64, 64])`` is ``head_hidden=(64, 64)``."""
    policy_kwargs: dict = field(default_factory=dict)
    """More keyword arguments for :class:`rlstm.policy.LSTMPolicy` (e.g. ``log_std_init``,
    ``core``, ``image_encoder``)."""
    dtype: Literal["float32", "float64"] = "float32"
    """The policy's dtype."""
    obs_keys: tuple[str, ...] | None = None
    """For a ``Dict`` observation: the parts the policy sees (its ``action_mask`` is kept as
    well). Use it to leave out parts rlstm cannot encode, such as MiniGrid's ``mission``
    text (``obs_keys=["image", "direction"]``). None: every part."""
    normalize_obs: bool = True
    """Normalise observations by running statistics: a float ``Box`` observation, and every
    float ``Box`` part of a ``Dict``/``Tuple`` one (images and discrete parts never). The
    statistics are saved with the model and used by ``predict``."""
    clip_obs: Annotated[float, Range(0, low_open=True)] = 10.0
    """Clip normalised observations to ``[-clip_obs, clip_obs]``."""
    log_dir: str | None = None
    """Folder for ``progress.csv``, ``learning_curve.png``, TensorBoard events and
    ``checkpoint.rlstm`` (``None``: no files)."""
    checkpoint_freq: Annotated[int, Range(0)] = 0
    """Write ``log_dir/checkpoint.rlstm`` every this many timesteps (0: only at the end of
    ``learn`` and on Ctrl-C). Needs ``log_dir``."""
    log_every: AtLeast1 = 1
    """Write a CSV/TensorBoard row every this many iterations."""
    tensorboard: bool = True
    """Write TensorBoard events to ``log_dir`` when tensorboard or tensorboardX is installed."""
    verbose: Annotated[int, Range(0)] = 0
    """1: print one line per logged iteration."""
    backend: Literal["serial", "process", "ray"] | None = "serial"
    """Where the work of an iteration runs (:mod:`agents.backends`): ``"serial"`` (this
    process), ``"process"`` (local worker processes) or ``"ray"``. ``None``: ``"process"``
    with more than one core."""
    n_workers: AtLeast1 | None = None
    """Workers of the backend (None: one for ``"serial"``, one per core otherwise)."""
    address: str | None = None
    """Ray only: the cluster to join (``"auto"``, ``"ray://host:10001"``); None starts a
    local Ray."""
    blas_threads: AtLeast1 | None = 1
    """BLAS threads in the training process during ``learn`` (threadpoolctl). RL batches are
    small: one thread is fastest, and several can be many times slower on a busy machine.
    ``None``: leave BLAS alone. (Evolution workers always run one thread each.)"""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every field against its annotation, then the rules between fields."""
        check_config(self)
        self.check()

    def check(self) -> None:
        """Rules between fields (subclasses add theirs and call ``super().check()``)."""
        if self.checkpoint_freq and self.log_dir is None:
            raise ValueError(f"{type(self).__name__}.checkpoint_freq needs log_dir: set "
                             f"log_dir='runs/my-run'")
        for key in self._policy_fields():
            if key in self.policy_kwargs:
                raise ValueError(f"set {key} on the trainer config, not in policy_kwargs")

    def _policy_fields(self) -> tuple[str, ...]:
        """Config fields that become LSTMPolicy arguments (so policy_kwargs must not repeat
        them)."""
        return ("hidden_size", "num_layers", "mlp_hidden", "head_hidden", "dtype")


def make_config(config_class: type, config=None, overrides: dict | None = None):
    """``config`` (default: ``config_class()``) with ``overrides`` applied and checked.

    A config of another class is a ``TypeError``; so is an override that is not a field (the
    message lists the fields and suggests the nearest one)."""
    if config is None:
        config = config_class()
    if not isinstance(config, config_class):
        raise TypeError(f"config must be a {config_class.__name__}, got "
                        f"{type(config).__name__}: pass settings as keywords, e.g. "
                        f"n_envs=4, or config={config_class.__name__}(...)")
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(overrides) - names
    if unknown:
        error = unknown_keys_error(config_class.__name__, unknown, names)
        hints = [f"{k} -> {SB3_NAMES[k]}" for k in sorted(unknown) if k in SB3_NAMES]
        if hints:
            raise TypeError(f"{error}. Stable-Baselines3 names: {'; '.join(hints)} (see "
                            f"docs/from-sb3.md)")
        raise error
    return dataclasses.replace(config, **overrides)


SB3_NAMES = {
    "batch_size": "n_minibatches (minibatches per epoch; n_minibatches = n_envs * n_steps // "
                  "batch_size)",
    "tensorboard_log": "log_dir (TensorBoard events go there when tensorboard is installed)",
    "device": "nothing (rlstm runs on the CPU)",
    "policy": "nothing (pass the env first; the policy is always recurrent, see hidden_size)",
    "lstm_hidden_size": "hidden_size",
    "n_lstm_layers": "num_layers",
    "net_arch": "head_hidden (MLPs after the LSTM, as sb3-contrib's net_arch with the same "
                "sizes for pi and vf; mlp_hidden is an MLP before it)",
    "shared_lstm": "shared_core",
    "enable_critic_lstm": "shared_core=False (a critic core of its own)",
    "stats_window_size": "nothing (ep_return_mean is over the last 100 episodes)",
    "normalize_images": "policy_kwargs={'image_scale': None} (to leave image values as they "
                        "are)",
}
"""Stable-Baselines3 keyword -> what it is here; named in the error for an unknown setting."""
