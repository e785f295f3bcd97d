"""Rollout storage for recurrent on-policy trainers: GAE(lambda) and sequence chunks for BPTT.

Arrays are time-major, ``(n_steps, n_envs, ...)``, as a Gymnasium vector env produces them.
Observations and actions may be nested (``Dict``/``Tuple`` spaces): they are stored as trees
(dicts / tuples) of arrays with the same leading ``(n_steps, n_envs)``.

Gymnasium's contract is kept exactly:

* ``terminated`` and ``truncated`` are stored apart. After a termination the return is cut
  (the next value is 0); after a truncation it is bootstrapped from ``final_values[t]``, the
  value of the episode's final observation, which the trainer writes in.
* ``episode_starts[t]`` marks that ``obs[t]`` is the first observation of an episode, so the
  LSTM state is zeroed before step ``t`` (in the rollout and again in ``policy.evaluate``).
* ``valid[t]`` is False for the steps a ``NEXT_STEP`` autoreset vector env spends resetting
  (the action is ignored and the reward is 0); they are masked out of every loss.
* ``states[k]`` is the policy's recurrent state before step ``k * seq_len``: each chunk of
  ``seq_len`` steps of one env is a sequence that truncated BPTT starts from that state.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from rlstm.policy.spaces import tree_map
from rlstm.validation import check_int

__all__ = ["RolloutBuffer", "compute_gae", "tree_stack", "select_sequences"]


def tree_stack(trees: list) -> Any:
    """Stack a list of matching trees along a new leading axis."""
    return tree_map(lambda *leaves: np.stack(leaves), *trees)


def compute_gae(rewards, values, terminated, truncated, final_values, last_values,
                gamma: float, gae_lambda: float, valid=None):
    """GAE(lambda) advantages and returns (``advantages + values``), all ``(T, B)``.

    ``delta_t = r_t + gamma * next_value_t - V_t`` where ``next_value_t`` is ``0`` after a
    termination, ``final_values[t]`` after a truncation, else ``V_{t+1}`` (``last_values`` for
    the last step). ``A_t = delta_t + gamma * lambda * A_{t+1}`` unless step ``t`` ended an
    episode or step ``t + 1`` is not a real transition (``valid`` False).

    The backward recursion runs once per rollout over ``T`` rows of ``B`` entries each (as in
    every PPO implementation); it is not part of the per-minibatch update.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    T, B = rewards.shape
    term = np.asarray(terminated, dtype=bool)
    trunc = np.asarray(truncated, dtype=bool) & ~term
    valid = np.ones((T, B), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    next_values = np.concatenate([values[1:], np.asarray(last_values, np.float64)[None]])
    next_values = np.where(term, 0.0, np.where(trunc, final_values, next_values))
    deltas = rewards + gamma * next_values - values
    next_valid = np.concatenate([valid[1:], np.ones((1, B), dtype=bool)])
    carry = gamma * gae_lambda * (~(term | trunc) & next_valid)
    advantages = np.zeros((T, B), dtype=np.float64)
    last = np.zeros(B, dtype=np.float64)
    for t in range(T - 1, -1, -1):
        last = deltas[t] + carry[t] * last
        advantages[t] = last
    advantages[~valid] = 0.0
    return advantages, advantages + values


class RolloutBuffer:
    """One rollout of ``n_steps`` steps from ``n_envs`` envs, cut into sequences of ``seq_len``.

    Fill it with :meth:`add` once per step (and :meth:`add_state` before every
    ``seq_len``-th step), then call :meth:`compute_returns_and_advantages`, then draw
    minibatches of whole sequences with :meth:`minibatches`.
    """

    def __init__(self, n_steps: int, n_envs: int, seq_len: int, gamma: float,
                 gae_lambda: float):
        self.n_steps = check_int("n_steps", n_steps)
        self.n_envs = check_int("n_envs", n_envs)
        self.seq_len = check_int("seq_len", seq_len)
        if self.n_steps % self.seq_len:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of seq_len ({seq_len})")
        self.gamma, self.gae_lambda = float(gamma), float(gae_lambda)
        self.reset()

    @property
    def n_chunks(self) -> int:
        """Sequences per env per rollout."""
        return self.n_steps // self.seq_len

    @property
    def n_sequences(self) -> int:
        return self.n_chunks * self.n_envs

    def reset(self) -> None:
        T, B = self.n_steps, self.n_envs
        self.pos = 0
        self._obs, self._actions, self._states = [], [], []
        self.rewards = np.zeros((T, B), dtype=np.float64)
        self.values = np.zeros((T, B), dtype=np.float64)
        self.log_probs = np.zeros((T, B), dtype=np.float64)
        self.episode_starts = np.zeros((T, B), dtype=bool)
        self.terminated = np.zeros((T, B), dtype=bool)
        self.truncated = np.zeros((T, B), dtype=bool)
        self.valid = np.ones((T, B), dtype=bool)
        self.final_values = np.zeros((T, B), dtype=np.float64)
        self.advantages = self.returns = None
        self._sequences = None

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add_state(self, state) -> None:
        """Store the recurrent state before step ``pos`` (call when ``pos % seq_len == 0``)."""
        if self.pos % self.seq_len or len(self._states) != self.pos // self.seq_len:
            raise RuntimeError("add_state must be called once before every seq_len-th step")
        self._states.append(tree_map(np.copy, state))

    def add(self, obs, actions, rewards, episode_starts, values, log_probs, terminated,
            truncated, valid=None) -> None:
        """Store step ``pos``: ``obs`` is what the policy saw, ``rewards`` etc. what followed."""
        if self.full:
            raise RuntimeError("rollout buffer is full; call reset()")
        if len(self._states) * self.seq_len <= self.pos:
            raise RuntimeError("call add_state(state) before the first step of each sequence")
        t = self.pos
        self._obs.append(tree_map(np.copy, obs))
        self._actions.append(tree_map(np.copy, actions))
        self.rewards[t] = rewards
        self.episode_starts[t] = episode_starts
        self.values[t] = values
        self.log_probs[t] = log_probs
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        if valid is not None:
            self.valid[t] = valid
        self.pos += 1

    def compute_returns_and_advantages(self, last_values) -> None:
        """GAE over the full rollout (see :func:`compute_gae`); ``last_values`` is
        ``V(obs after the last step)`` per env."""
        if not self.full:
            raise RuntimeError(f"rollout holds {self.pos} of {self.n_steps} steps")
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.terminated, self.truncated, self.final_values,
            last_values, self.gamma, self.gae_lambda, self.valid)
        self.obs = tree_stack(self._obs)
        self.actions = tree_stack(self._actions)
        self.states = tree_stack(self._states)
        self._sequences = None

    # ----------------------------------------------------------------- parts (workers)
    _ARRAYS = ("rewards", "values", "log_probs", "episode_starts", "terminated", "truncated",
               "valid", "final_values", "advantages", "returns")

    def parts(self) -> dict[str, Any]:
        """The finished rollout as plain arrays (what a rollout worker sends back)."""
        if self.advantages is None:
            raise RuntimeError("call compute_returns_and_advantages first")
        return {**{k: getattr(self, k) for k in self._ARRAYS},
                "obs": self.obs, "actions": self.actions, "states": self.states}

    def load_parts(self, parts: list[dict[str, Any]]) -> None:
        """Fill this buffer with the rollouts of consecutive env slices (``parts()`` of each
        worker, in env order): the arrays are joined along the env axis, so the buffer holds
        exactly what one rollout over all the envs would have."""
        def join(axis):
            return lambda *a: np.concatenate(a, axis=axis)
        widths = [int(np.shape(p["rewards"])[1]) for p in parts]
        if sum(widths) != self.n_envs or any(np.shape(p["rewards"])[0] != self.n_steps
                                             for p in parts):
            raise ValueError(f"the parts hold {widths} envs; this buffer needs {self.n_envs} "
                             f"envs of {self.n_steps} steps")
        for k in self._ARRAYS:
            setattr(self, k, np.concatenate([p[k] for p in parts], axis=1))
        self.obs = tree_map(join(1), *[p["obs"] for p in parts])
        self.actions = tree_map(join(1), *[p["actions"] for p in parts])
        self.states = tree_map(join(2), *[p["states"] for p in parts])  # (chunks, L, B, H)
        self.pos = self.n_steps
        self._sequences = None

    def complete_episode_mask(self) -> np.ndarray:
        """``(T, B)``: True for steps whose episode ends within this rollout (for Monte-Carlo
        returns: later steps would need rewards the rollout has not seen)."""
        done = self.terminated | self.truncated
        # index of the last done per env; steps after it are incomplete
        t_idx = np.arange(self.n_steps)[:, None]
        last_done = np.where(done.any(axis=0), (t_idx * done).max(axis=0), -1)
        return (t_idx <= last_done[None, :]) & self.valid

    # ----------------------------------------------------------------- sequences
    def to_sequences(self, a: np.ndarray) -> np.ndarray:
        """``(n_steps, n_envs, ...)`` -> ``(seq_len, n_chunks * n_envs, ...)``; sequence
        ``k * n_envs + b`` is steps ``[k * seq_len, (k + 1) * seq_len)`` of env ``b``."""
        L, K, B = self.seq_len, self.n_chunks, self.n_envs
        a = a.reshape((K, L, B) + a.shape[2:])
        return np.ascontiguousarray(np.swapaxes(a, 0, 1).reshape((L, K * B) + a.shape[3:]))

    def sequences(self) -> dict[str, Any]:
        """The whole rollout as ``n_sequences`` sequences of length ``seq_len`` (computed once
        per rollout).

        Recurrent states, stored as ``(n_chunks, num_layers, n_envs, H)`` leaves, are merged
        to ``(num_layers, n_chunks * n_envs, H)``: row ``k * n_envs + b`` starts sequence
        ``k`` of env ``b``.
        """
        if self._sequences is not None:
            return self._sequences
        seq = {name: self.to_sequences(getattr(self, name)) for name in
               ("rewards", "values", "log_probs", "episode_starts", "valid", "advantages",
                "returns")}
        seq["obs"] = tree_map(self.to_sequences, self.obs)
        seq["actions"] = tree_map(self.to_sequences, self.actions)
        seq["states"] = tree_map(self._merge_state, self.states)
        self._sequences = seq
        return seq

    def refresh_states(self, advance) -> None:
        """Recompute the state stored before every chunk but the first, with the current
        weights: ``advance(obs_seq, state, episode_starts) -> state`` (the policy's
        :meth:`~rlstm.policy.LSTMPolicy.advance`) runs chunk ``k - 1`` from the state of chunk
        ``k - 1`` to give the state of chunk ``k``. The first chunk keeps the state the
        rollout started from (its steps are not in this buffer). After an update, the stored
        states are those of the weights that collected the rollout; refreshed, every chunk
        starts from the state the current weights would have reached (R2D2's "stored state"
        staleness, removed by recomputation rather than a burn-in)."""
        if self.advantages is None:
            raise RuntimeError("call compute_returns_and_advantages (or load_parts) first")
        if self.n_chunks == 1:
            return
        L = self.seq_len
        state = tuple(s[0] for s in self.states)
        for k in range(1, self.n_chunks):
            part = slice((k - 1) * L, k * L)
            state = advance(tree_map(lambda a: a[part], self.obs), state,
                            self.episode_starts[part])
            for stored, new in zip(self.states, state):
                stored[k] = new
        if self._sequences is not None:
            self._sequences["states"] = tree_map(self._merge_state, self.states)

    @staticmethod
    def _merge_state(s: np.ndarray) -> np.ndarray:
        """``(n_chunks, num_layers, n_envs, H)`` -> ``(num_layers, n_chunks * n_envs, H)``:
        row ``k * n_envs + b`` starts sequence ``k`` of env ``b``."""
        s = np.moveaxis(s, 0, 1)
        return np.ascontiguousarray(s.reshape((s.shape[0], -1) + s.shape[3:]))

    def minibatches(self, n_minibatches: int, rng: np.random.Generator
                    ) -> Iterator[dict[str, Any]]:
        """Shuffle whole sequences and yield ``n_minibatches`` batches of them."""
        seq = self.sequences()
        order = rng.permutation(self.n_sequences)
        for idx in np.array_split(order, n_minibatches):
            if idx.size == self.n_sequences:  # one minibatch: the whole rollout, no copy
                yield seq
            else:
                yield select_sequences(seq, np.sort(idx))


def select_sequences(seq: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    """The sequences ``idx``: batch axis 1 of every leaf (states included)."""
    return {k: tree_map(lambda a: np.ascontiguousarray(a[:, idx]), v) for k, v in seq.items()}
