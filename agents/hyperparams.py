"""Tuned settings per (algorithm, task), the way RL Zoo keeps them in its yml files.

Each entry is the configuration measured in ``benchmarks/learning_results.py`` (numbers in
docs/agents.md and the README), with its step budget. ``rlstm train ALGO ENV`` starts from the
entry for ``(ALGO, ENV)`` when there is one (``--set`` overrides on top, ``--no-tuned`` ignores
it), and from the trainer's defaults otherwise::

    from agents import PPO
    from agents.hyperparams import tuned
    settings, budget = tuned("ppo", "rlstm/MountainCarContinuousNoVel-v0")
    PPO("rlstm/MountainCarContinuousNoVel-v0", seed=0, **settings).learn(budget)
"""
from __future__ import annotations

import copy

__all__ = ["TUNED", "tuned"]

# algorithm -> env id -> {"timesteps": budget, "settings": config overrides, "result": text}
TUNED: dict[str, dict[str, dict]] = {
    "ppo": {
        # The defaults themselves: solve both CartPoles and Acrobot within 100k steps, and the
        # final evaluations stay solved (5 of 5 seeds each).
        "CartPole-v1": {"timesteps": 100_000, "settings": {}},
        "rlstm/CartPoleNoVel-v1": {"timesteps": 100_000, "settings": {}},
        "Acrobot-v1": {"timesteps": 100_000, "settings": {}},
        # The Zoo's RecurrentPPO uses gSDE here too; rlstm's own learning-rate/rollout choice.
        # No entropy bonus (measured so, before PPO's default became 0.01).
        "rlstm/PendulumNoVel-v1": {"timesteps": 100_000, "settings": {
            "n_envs": 4, "n_steps": 512, "seq_len": 64, "n_minibatches": 16, "n_epochs": 10,
            "gamma": 0.9, "gae_lambda": 0.95, "learning_rate": 3e-3, "clip_schedule": "constant",
            "ent_coef": 0.0, "mlp_hidden": [64], "use_sde": True, "sde_sample_freq": 4}},
        # The Zoo's ppo_lstm settings (n_envs 8, n_steps 1024, batch 256, gSDE every 8 steps,
        # LSTM 32, separate critic) with an MLP(64) encoder, log_std_init -1 and half the Zoo's
        # vf_coef (0.19 lost one seed of three).
        "rlstm/MountainCarContinuousNoVel-v0": {"timesteps": 300_000, "settings": {
            "n_envs": 8, "n_steps": 1024, "seq_len": 128, "n_minibatches": 32, "n_epochs": 10,
            "gamma": 0.9999, "gae_lambda": 0.9, "learning_rate": 7.77e-5,
            "lr_schedule": "constant", "clip_range": 0.1, "clip_schedule": "constant",
            "ent_coef": 0.00429, "vf_coef": 0.095, "max_grad_norm": 5.0,
            "normalize_reward": False, "hidden_size": 32, "mlp_hidden": [64],
            "use_sde": True, "sde_sample_freq": 8, "policy_kwargs": {"log_std_init": -1.0}}},
        # A cue recalled after 30-80 steps of distractors: BPTT through whole 256-step
        # rollouts (seq_len = n_steps), and forget gates that start open (bias +3) so that the
        # fresh LSTM keeps the cue long enough for a gradient to reach it (docs/agents.md,
        # "Long memory").
        "rlstm/DelayedRecall-v0": {"timesteps": 500_000, "settings": {
            "n_steps": 256, "n_minibatches": 4,
            "policy_kwargs": {"core_kwargs": {"forget_bias": 3.0}}}},
        # rlstm's own choice (needs box2d + pygame); measured at 3M steps.
        "rlstm/LunarLanderNoVel-v3": {"timesteps": 3_000_000, "settings": {
            "n_envs": 16, "n_steps": 512, "seq_len": 128, "n_minibatches": 16, "n_epochs": 10,
            "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.01,
            "hidden_size": 64, "mlp_hidden": [64]}},
    },
    # The defaults, with the budget that the learning table (benchmarks/learning_results.py)
    # and the slow tests use.
    "a2c": {"CartPole-v1": {"timesteps": 150_000, "settings": {}}},
    "reinforce": {"CartPole-v1": {"timesteps": 150_000, "settings": {}}},
}


def tuned(algo: str, env_id: str) -> tuple[dict, int | None]:
    """``(settings, timesteps)`` tuned for ``algo`` on ``env_id``; ``({}, None)`` if none."""
    if not isinstance(algo, str) or not isinstance(env_id, str):
        raise TypeError("tuned(algo, env_id) takes two strings, e.g. tuned('ppo', "
                        "'rlstm/PendulumNoVel-v1')")
    entry = TUNED.get(algo.lower(), {}).get(env_id)
    if entry is None:
        return {}, None
    return copy.deepcopy(entry["settings"]), entry["timesteps"]


# ---------------------------------------------------------------------------------------------
# POPGym and MiniGrid (benchmarks/popgym_suite.py, benchmarks/minigrid_memory.py; numbers in
# docs/agents.md). Kept in this block of their own: the ids are registered by other packages
# (``import popgym``, ``import minigrid``, or ``rlstm train ... --import popgym``).
POPGYM_FAMILIES = (
    "Autoencode", "RepeatPrevious", "RepeatFirst", "CountRecall", "PositionOnlyCartPole",
    "PositionOnlyPendulum", "VelocityOnlyCartpole", "NoisyPositionOnlyCartPole",
    "NoisyPositionOnlyPendulum", "MultiarmedBandit", "HigherLower", "Battleship",
    "Concentration", "MineSweeper", "LabyrinthExplore", "LabyrinthEscape")
"""POPGym 1.0.7's env families, in its own order (``popgym.envs``); the Labyrinths need
``mazelib``. Their ids are ``popgym-{family}{Easy|Medium|Hard}-v0``."""
POPGYM_LEVELS = ("Easy", "Medium")
"""The difficulties the suite runs."""
POPGYM_BUDGET = 500_000
"""The suite's one step budget per run (the table in docs/agents.md was measured at it)."""
POPGYM_PPO = {"n_envs": 8, "n_steps": 64, "seq_len": 64, "n_minibatches": 1, "n_epochs": 10,
              "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 1e-3, "ent_coef": 0.01,
              "hidden_size": 64}
"""The suite's PPO settings for every POPGym task (beyond the PPO defaults): 64-step sequences
(RepeatFirst must carry its first card through 51 steps), gamma 0.99 and an entropy bonus."""
POPGYM_TASK_SETTINGS: dict[str, dict] = {}
"""Per-task changes on top of :data:`POPGYM_PPO`, by env id."""

for _family in POPGYM_FAMILIES:
    for _level in POPGYM_LEVELS:
        _id = f"popgym-{_family}{_level}-v0"
        TUNED["ppo"][_id] = {"timesteps": POPGYM_BUDGET,
                             "settings": {**POPGYM_PPO, **POPGYM_TASK_SETTINGS.get(_id, {})}}

# MiniGrid-MemoryS7 (``import minigrid``): the Dict observation without its mission text, the
# image's object/colour/state codes one-hot inside the policy (``image_codes``: as numbers, a
# key and a ball differ by one unit of one input and the task is not learned); BPTT through
# whole 128-step rollouts with the forget-gate bias +3 (as DelayedRecall); a constant 1e-3
# learning rate, GAE lambda 0.8 and 8 epochs (with 3e-4 decaying, lambda 0.95 and 4 epochs the
# policy never ties its turn to the cue, even when the cue is in its first view). Measured in
# benchmarks/minigrid_memory.py (docs/agents.md).
TUNED["ppo"]["MiniGrid-MemoryS7-v0"] = {"timesteps": 1_000_000, "settings": {
    "obs_keys": ["image", "direction"],
    "policy_kwargs": {"image_codes": [11, 6, 3], "core_kwargs": {"forget_bias": 3.0}},
    "n_envs": 16, "n_steps": 128, "seq_len": 128, "n_minibatches": 4, "n_epochs": 8,
    "gamma": 0.99, "gae_lambda": 0.8, "learning_rate": 1e-3, "lr_schedule": "constant",
    "ent_coef": 0.01, "hidden_size": 128}}
del _family, _level, _id
