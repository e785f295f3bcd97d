"""Environments that need memory, registered under the ``rlstm/`` Gymnasium namespace.

Importing ``agents`` (or ``agents.envs``) registers:

==============================================  =============================================
id                                              what it is
==============================================  =============================================
``rlstm/CartPoleNoVel-v1``                      CartPole-v1 observing only (x, theta)
``rlstm/PendulumNoVel-v1``                      Pendulum-v1 observing only (cos, sin) of theta
``rlstm/MountainCarContinuousNoVel-v0``         MountainCarContinuous-v0 observing only position
``rlstm/LunarLanderNoVel-v3``                   LunarLander-v3 without the three velocities
                                                (only when box2d is installed)
``rlstm/TMaze-v0``                              Bakker's (2002) T-maze, ``corridor_length=10``
``rlstm/DelayedRecall-v0``                      a cue, 30-80 steps of distractors, a query
==============================================  =============================================

A velocity-masked task is partially observable: the agent has to infer the velocities from the
positions it has seen, which an LSTM can and a feed-forward policy cannot.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["MaskObservation", "TMazeEnv", "DelayedRecallEnv", "NAMESPACE", "registered_ids"]

NAMESPACE = "rlstm"


class MaskObservation(gym.ObservationWrapper):
    """Keep only the observation entries listed in ``keep`` (a 1-D ``Box`` observation).

    ``MaskObservation(gym.make("CartPole-v1"), keep=(0, 2))`` hides both velocities.
    """

    def __init__(self, env: gym.Env, keep: Sequence[int]):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"MaskObservation needs a 1-D Box observation space, got {space}")
        keep = np.asarray(keep, dtype=np.intp)
        if keep.ndim != 1 or keep.size == 0 or keep.min() < 0 or keep.max() >= space.shape[0]:
            raise ValueError(f"keep must list indices in [0, {space.shape[0]}), got {keep}")
        self.keep = keep
        self.observation_space = spaces.Box(space.low[keep], space.high[keep],
                                            dtype=space.dtype)

    def observation(self, observation):
        return np.asarray(observation, dtype=self.observation_space.dtype)[self.keep]


def _masked(env_id: str, keep: Sequence[int]):
    """An entry point building ``env_id`` without its time limit (``register`` adds it back)."""
    def make(**kwargs) -> gym.Env:
        env = gym.make(env_id, max_episode_steps=None, disable_env_checker=True, **kwargs)
        # gym.make(max_episode_steps=None) keeps the spec's limit: unwrap it so that exactly one
        # TimeLimit (the one of the rlstm/ spec) ends episodes.
        while isinstance(env, (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing,
                               gym.wrappers.PassiveEnvChecker)):
            env = env.env
        return MaskObservation(env, keep)
    return make


_CELL = 8
"""Pixels per cell of the ``rgb_array`` renderings."""


def _cells_image(colours: list[list[tuple[int, int, int]]]) -> np.ndarray:
    """An ``(rows * _CELL, cols * _CELL, 3)`` uint8 image of a grid of RGB cells, each with
    a one-pixel dark border."""
    grid = np.asarray(colours, dtype=np.uint8)
    img = np.repeat(np.repeat(grid, _CELL, axis=0), _CELL, axis=1)
    img[::_CELL, :] = 40
    img[:, ::_CELL] = 40
    return img


def _check_render_mode(render_mode, modes) -> str | None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be None or one of {modes}, got {render_mode!r}")
    return render_mode


class TMazeEnv(gym.Env):
    """The T-maze of Bakker (2002), "Reinforcement learning with long short-term memory".

    The agent starts at the left end of a corridor of ``corridor_length`` cells that ends in a
    T-junction. Only on the first step does the observation say where the goal is (up or down);
    to be rewarded at the junction the agent must remember it for the whole corridor.

    Observations are 3 bits: ``(0, 1, 1)`` = goal up and ``(1, 1, 0)`` = goal down (start cell
    only), ``(1, 0, 1)`` in the corridor, ``(0, 1, 0)`` at the junction. Actions: 0 north,
    1 east, 2 south, 3 west. Moving into a wall costs ``-0.1`` and leaves the agent where it
    is. Going north or south at the junction ends the episode with ``+4`` on the goal side and
    ``-0.1`` on the other. Episodes are truncated after ``max_episode_steps`` steps (default
    ``4 * (corridor_length + 1)``).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    GOAL_REWARD, WRONG_REWARD, WALL_REWARD = 4.0, -0.1, -0.1

    def __init__(self, corridor_length: int = 10, max_episode_steps: int | None = None,
                 render_mode: str | None = None):
        if isinstance(corridor_length, bool) or not isinstance(corridor_length, (int, np.integer)):
            raise TypeError(f"corridor_length must be an int, got {corridor_length!r}")
        if corridor_length < 1:
            raise ValueError(f"corridor_length must be >= 1, got {corridor_length}")
        self.corridor_length = int(corridor_length)
        self.max_episode_steps = (4 * (self.corridor_length + 1) if max_episode_steps is None
                                  else int(max_episode_steps))
        if self.max_episode_steps < self.corridor_length + 1:
            raise ValueError(f"max_episode_steps must be >= corridor_length + 1 = "
                             f"{self.corridor_length + 1} so the junction can be reached")
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self._pos, self._goal_up, self._t = 0, True, 0

    def _obs(self) -> np.ndarray:
        if self._pos == 0:
            bits = (0, 1, 1) if self._goal_up else (1, 1, 0)
        elif self._pos == self.corridor_length:
            bits = (0, 1, 0)
        else:
            bits = (1, 0, 1)
        return np.array(bits, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos, self._t = 0, 0
        self._goal_up = bool(self.np_random.integers(2))
        return self._obs(), {"goal_up": self._goal_up}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, 4), got {action!r}")
        action = int(action)
        self._t += 1
        reward, terminated = 0.0, False
        at_junction = self._pos == self.corridor_length
        if action in (0, 2):  # north / south
            if at_junction:
                terminated = True
                reward = self.GOAL_REWARD if (action == 0) == self._goal_up else self.WRONG_REWARD
            else:
                reward = self.WALL_REWARD
        elif action == 1:  # east
            if at_junction:
                reward = self.WALL_REWARD
            else:
                self._pos += 1
        else:  # west
            if self._pos == 0:
                reward = self.WALL_REWARD
            else:
                self._pos -= 1
        truncated = not terminated and self._t >= self.max_episode_steps
        return self._obs(), reward, terminated, truncated, {"goal_up": self._goal_up}

    def render(self):
        if self.render_mode == "ansi":
            row = ["."] * (self.corridor_length + 1)
            row[self._pos] = "A"
            goal = "^" if self._goal_up else "v"
            return "".join(row) + " goal " + goal
        if self.render_mode == "rgb_array":  # 3 rows: the goal arm on top or bottom, green
            n = self.corridor_length + 1
            rows = [[(0, 0, 0)] * n, [(200, 200, 200)] * n, [(0, 0, 0)] * n]
            rows[0][-1] = (40, 200, 40) if self._goal_up else (200, 40, 40)
            rows[2][-1] = (200, 40, 40) if self._goal_up else (40, 200, 40)
            rows[1][0] = (40, 200, 40)  # the start cell, where the goal side is shown
            rows[1][self._pos] = (40, 80, 220)
            return _cells_image(rows)
        return None


def _int_arg(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


class DelayedRecallEnv(gym.Env):
    """Recall a cue after a long delay full of distractors.

    An episode is a cue, a delay and a query. The first observation shows the cue, one of
    ``n_symbols`` symbols, with the cue flag set. Then come ``delay`` steps (drawn uniformly
    from ``[min_delay, max_delay]`` at every reset), each showing a distractor: a symbol drawn
    uniformly from the same ``n_symbols`` (``distractors=False``: no symbol). Then the query
    flag is set (no symbol shown), and the action taken on that step must name the cue: reward
    ``+1`` when it does, ``wrong_reward`` when it does not; the episode ends there. Actions
    before the query do nothing. The cue is seen ``delay + 1`` steps before the query, so the
    default task needs a memory of 31 to 81 steps; a policy without memory scores
    ``1 / n_symbols`` (0.25 by default) at best.

    Observation: ``Box(0, 1, (n_symbols + 2,))``, the symbol one-hot followed by the cue flag
    and the query flag. Action: ``Discrete(n_symbols)``. ``info["cue"]`` is the cue and
    ``info["delay"]`` the delay of the episode.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, n_symbols: int = 4, min_delay: int = 30, max_delay: int = 80,
                 distractors: bool = True, wrong_reward: float = 0.0,
                 render_mode: str | None = None):
        self.n_symbols = _int_arg("n_symbols", n_symbols, 2)
        self.min_delay = _int_arg("min_delay", min_delay, 0)
        self.max_delay = _int_arg("max_delay", max_delay, 0)
        if self.max_delay < self.min_delay:
            raise ValueError(f"max_delay ({max_delay}) must be >= min_delay ({min_delay})")
        if not isinstance(distractors, (bool, np.bool_)):
            raise TypeError(f"distractors must be a bool, got {distractors!r}")
        self.distractors = bool(distractors)
        if isinstance(wrong_reward, bool) or not isinstance(wrong_reward, (int, float,
                                                                           np.number)):
            raise TypeError(f"wrong_reward must be a number, got {wrong_reward!r}")
        if not np.isfinite(wrong_reward) or wrong_reward >= 1.0:
            raise ValueError(f"wrong_reward must be a finite number below the +1 of a right "
                             f"answer, got {wrong_reward!r}")
        self.wrong_reward = float(wrong_reward)
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.n_symbols + 2,),
                                            dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_symbols)
        self._cue, self._delay, self._t, self._symbol = 0, self.min_delay, 0, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.n_symbols + 2, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
            obs[self.n_symbols] = 1.0
        elif self._t <= self._delay:
            if self.distractors:
                obs[self._symbol] = 1.0
        else:
            obs[self.n_symbols + 1] = 1.0
        return obs

    def _info(self) -> dict:
        return {"cue": self._cue, "delay": self._delay}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._cue = int(self.np_random.integers(self.n_symbols))
        self._delay = int(self.np_random.integers(self.min_delay, self.max_delay + 1))
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.n_symbols}), got {action!r}")
        if self._t > self._delay + 1:
            raise RuntimeError("the query has been answered and the episode has ended; call "
                               "reset()")
        if self._t == self._delay + 1:  # the query: the action names the cue
            self._t += 1
            reward = 1.0 if int(action) == self._cue else self.wrong_reward
            return np.zeros(self.n_symbols + 2, np.float32), reward, True, False, self._info()
        self._t += 1
        if self._t <= self._delay and self.distractors:
            self._symbol = int(self.np_random.integers(self.n_symbols))
        return self._obs(), 0.0, False, False, self._info()

    def render(self):
        if self.render_mode == "ansi":
            if self._t == 0:
                return f"cue {self._cue}"
            if self._t <= self._delay:
                return f"delay {self._t}/{self._delay}" + (
                    f": {self._symbol}" if self.distractors else "")
            return "query"
        if self.render_mode == "rgb_array":  # the observation: symbols, cue flag, query flag
            obs = self._obs() if self._t <= self._delay + 1 else np.zeros(self.n_symbols + 2)
            on = [(230, 230, 230)] * self.n_symbols + [(40, 200, 40), (220, 160, 40)]
            return _cells_image([[on[k] if obs[k] else (0, 0, 0) for k in range(obs.size)]])
        return None


_REGISTRY = [
    ("CartPoleNoVel-v1", _masked("CartPole-v1", (0, 2)), 500, 475.0),
    ("PendulumNoVel-v1", _masked("Pendulum-v1", (0, 1)), 200, None),
    ("MountainCarContinuousNoVel-v0", _masked("MountainCarContinuous-v0", (0,)), 999, 90.0),
]
# Gymnasium's box2d package imports pygame too (CarRacing), so LunarLander needs both.
HAVE_BOX2D = all(importlib.util.find_spec(m) is not None for m in ("Box2D", "pygame"))
if HAVE_BOX2D:
    _REGISTRY.append(("LunarLanderNoVel-v3", _masked("LunarLander-v3", (0, 1, 4, 6, 7)), 1000,
                      200.0))


def _register() -> None:
    for name, entry, steps, threshold in _REGISTRY:
        env_id = f"{NAMESPACE}/{name}"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, max_episode_steps=steps,
                         reward_threshold=threshold)
    if f"{NAMESPACE}/TMaze-v0" not in gym.registry:
        # TMazeEnv truncates by itself, so its limit follows corridor_length.
        gym.register(f"{NAMESPACE}/TMaze-v0", entry_point=TMazeEnv, reward_threshold=3.9)
    if f"{NAMESPACE}/DelayedRecall-v0" not in gym.registry:
        # Every episode ends at its query (max_delay + 2 steps): no time limit needed.
        gym.register(f"{NAMESPACE}/DelayedRecall-v0", entry_point=DelayedRecallEnv,
                     reward_threshold=0.9)


def registered_ids() -> list[str]:
    """Every id this module registers (LunarLander only when box2d and pygame are installed,
    as ``pip install "gymnasium[box2d]"`` or rlstm's ``test`` extra gives them)."""
    return [f"{NAMESPACE}/{name}" for name, *_ in _REGISTRY] + [
        f"{NAMESPACE}/TMaze-v0", f"{NAMESPACE}/DelayedRecall-v0"]


_register()
