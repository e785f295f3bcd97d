"""MiniGrid-MemoryS7-v0 with rlstm's PPO: success rate, steps, wall-clock; conv vs flat speed.

    python benchmarks/minigrid_memory.py --seeds 0 1 2 --jobs 3 --out minigrid.jsonl
    python benchmarks/minigrid_memory.py --encoder flatten --seeds 0
    python benchmarks/minigrid_memory.py --throughput
    python benchmarks/minigrid_memory.py --report minigrid.jsonl
    python benchmarks/minigrid_memory.py --imitate match --imitate-epochs 600

MemoryS7 (the ``minigrid`` package): the agent starts in a corridor facing two objects, with a
cue object behind it; it must turn round to see the cue, remember it, and walk to the matching
object (reward ``1 - 0.9 * steps / 245`` on success, 0 on the wrong object or after 245 steps).
Walking to either object without looking succeeds half the time.

Training uses the tuned settings of ``agents.hyperparams`` for ``MiniGrid-MemoryS7-v0``
(``obs_keys=["image", "direction"]``: the ``mission`` text is left out; ``image_codes=[11, 6,
3]``: the 7x7x3 image holds object, colour and state codes, not pixels, and the policy one-hots
them), the image through the conv encoder unless ``--encoder flatten``;
``--earlier-settings`` starts from the entry before MemoryS7 was solved instead
(:data:`EARLIER`: the codes as numbers), on which the docs' table of attempts ran. Every
``--eval-freq`` steps, and at the end, the policy plays ``--eval-episodes`` episodes (seeds 10000...; greedy actions unless
``--sampled``); a success is an episode with a positive return. Each evaluation also splits the
episodes by start: those where the cue is in view at the first step (the agent starts in the
start room's first column: memory alone solves them) and those where it must turn round to see
it (exploration too). Per seed it prints the first step at which the success rate reached
``--target`` (0.9), the final success rate (and its split), and the training wall-clock and
steps/s (evaluations excluded); ``--save-dir`` keeps the final models. Runs are appended to
``--out`` (JSON lines); ``--jobs N`` runs seeds in N processes.

``--throughput`` measures training steps/s with the conv encoder and with the flattened image
(same settings, ``--throughput-steps`` each, alternated ``--repeats`` times, one process, one
BLAS thread) and prints the ratio: on an otherwise idle machine only.

``--imitate RULE`` trains the same network by behaviour cloning of a scripted walk instead
(:func:`imitate`; no reward), the turn at the split chosen by RULE (``match``: the task;
``cue`` or ``layout``: one half of it), and prints how well it learned the turn; ``--diagnose
MODEL`` prints a saved policy's action probabilities at the split. ``--actions 3``,
``--onehot`` and ``--cue-in-view`` are experiments on the env (:func:`make_env`).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ENV = "MiniGrid-MemoryS7-v0"


# The tuned entry for the id before MemoryS7 was solved (the codes as numbers, 3e-4 decaying,
# GAE lambda 0.95, 4 epochs, 32-step BPTT chunks): every attempt in docs/agents.md's table of
# them ran on it (``--earlier-settings``), so that table stays reproducible.
EARLIER = {"obs_keys": ["image", "direction"], "policy_kwargs": {"image_scale": None},
           "n_envs": 16, "n_steps": 128, "seq_len": 32, "n_minibatches": 8, "n_epochs": 4,
           "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.01,
           "hidden_size": 128}


def settings_for(encoder: str, overrides: dict | None = None, onehot: bool = False,
                 earlier: bool = False) -> tuple[dict, int]:
    """The tuned settings (``earlier``: :data:`EARLIER`) with ``overrides`` (``--set``;
    ``policy_kwargs`` adds to the tuned ones) and ``encoder``. ``onehot``: the env is wrapped
    in MiniGrid's one-hot wrapper (``--onehot``), so the policy takes its image as it is (no
    ``image_codes``)."""
    from agents.hyperparams import tuned
    settings, budget = tuned("ppo", ENV)
    if earlier:
        settings = copy.deepcopy(EARLIER)
    overrides = dict(overrides or {})
    kwargs = {**settings.get("policy_kwargs", {}), **overrides.pop("policy_kwargs", {}),
              "image_encoder": encoder}
    if onehot:
        kwargs.pop("image_codes", None)
        kwargs["image_scale"] = None
    settings.update(overrides)
    settings["policy_kwargs"] = kwargs
    return settings, budget


def make_env(onehot: bool = False, actions: int = 7, cue_in_view: bool = False):
    """MemoryS7; ``onehot=True`` wraps it in MiniGrid's own ``OneHotPartialObsWrapper`` (the
    image's object, colour and state codes one-hot: 7x7x20 instead of 7x7x3); ``actions=3``
    keeps only MiniGrid's actions 0-2 (turn left, turn right, forward: the other four do
    nothing in this env, where ``pickup`` is ``toggle`` and toggling a key or a ball is a
    no-op), as the published recurrent-PPO baseline does (Pleines et al.'s
    recurrent-ppo-truncated-bptt). Both are experiments (``--onehot``, ``--actions 3``), the
    only changes the benchmark makes to the env: rlstm itself needs neither.
    ``cue_in_view=True`` (``--cue-in-view``, a probe) keeps only the starts where the cue is in
    view at the first step (:class:`CueInView`): no exploration is needed, only memory."""
    import minigrid  # noqa: F401  (registers the MiniGrid ids)
    env = gym.make(ENV)
    if onehot:
        from minigrid.wrappers import OneHotPartialObsWrapper
        env = OneHotPartialObsWrapper(env)
    if actions != 7:
        if actions != 3:
            raise ValueError(f"actions must be 7 (all of MiniGrid's) or 3 (turns and forward), "
                             f"got {actions}")
        env = TurnsAndForward(env)
    if cue_in_view:
        env = CueInView(env)
    return env


class CueInView(gym.Wrapper):
    """MemoryS7 started only where the cue is in view at the first step (the start room's
    first column): every reset draws layouts until the agent starts there. What is left to
    learn is to remember the cue for the 4 steps to the split and turn by it; the only
    randomness is the cue and the order of the two objects (4 cases)."""

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(1_000):
            if self.env.unwrapped.agent_pos[0] == 1:
                return obs, info
            obs, info = self.env.reset(options=options)
        raise RuntimeError("MemoryS7 did not start in the cue's column in 1,000 resets")


class TurnsAndForward(gym.ActionWrapper):
    """MiniGrid with only its actions 0 (turn left), 1 (turn right) and 2 (forward)."""

    def __init__(self, env):
        super().__init__(env)
        self.action_space = gym.spaces.Discrete(3)

    def action(self, action):
        return int(action)


def play(model, n_episodes: int, seed: int = 10_000, deterministic: bool = True,
         max_steps: int = 1_000, onehot: bool = False, actions: int = 7,
         cue_in_view: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Play ``n_episodes`` episodes of MemoryS7 side by side (episode ``i`` reset with
    ``seed + i``). Returns ``(returns, cue_in_view)``: each episode's return, and whether the
    agent started next to the cue (at the start room's first column, where the cue is in its
    view at the first step; elsewhere it must turn round to see it)."""
    keys = model.config.obs_keys
    envs = [make_env(onehot, actions, cue_in_view) for _ in range(n_episodes)]
    obs = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    seen = np.array([e.unwrapped.agent_pos[0] == 1 for e in envs])
    total = np.zeros(n_episodes)
    done = np.zeros(n_episodes, dtype=bool)
    state, start = None, np.ones(n_episodes, dtype=bool)
    for _ in range(max_steps):
        batch = {k: np.stack([o[k] for o in obs]) for k in keys}
        acts, state = model.predict(batch, state, start, deterministic=deterministic)
        start[:] = False
        for i in np.flatnonzero(~done):
            o, r, terminated, truncated, _ = envs[i].step(int(acts[i]))
            obs[i] = o
            total[i] += r
            done[i] = terminated or truncated
        if done.all():
            break
    for e in envs:
        e.close()
    return total, seen


def success_rate(model, n_episodes: int, seed: int = 10_000, deterministic: bool = True,
                 max_steps: int = 1_000) -> tuple[float, float]:
    """``(success rate, mean return)`` of ``model`` over ``n_episodes`` episodes of MemoryS7
    (:func:`play`); a success is a positive return."""
    total, _ = play(model, n_episodes, seed, deterministic, max_steps)
    return float(np.mean(total > 0)), float(np.mean(total))


def split_by_cue(total: np.ndarray, cue_in_view: np.ndarray) -> dict:
    """Success rates of :func:`play`'s episodes split by where they start: ``in_view`` (the
    cue is in view at the first step, so only memory is needed) and ``turn`` (the agent must
    turn round to see it, so exploration is needed too); ``None`` where a group is empty."""
    win = total > 0
    return {"all": float(win.mean()),
            "in_view": float(win[cue_in_view].mean()) if cue_in_view.any() else None,
            "turn": float(win[~cue_in_view].mean()) if (~cue_in_view).any() else None,
            "n_in_view": int(cue_in_view.sum())}


def success_by_cue(model, n_episodes: int, seed: int = 10_000, deterministic: bool = True,
                   onehot: bool = False, actions: int = 7) -> dict:
    """:func:`split_by_cue` of ``n_episodes`` episodes. A policy with memory but no looking
    scores ~1 and ~0.5; a memoryless one ~0.5 on both."""
    return split_by_cue(*play(model, n_episodes, seed, deterministic, onehot=onehot,
                              actions=actions))


def run_seed(job: dict) -> dict:
    from threadpoolctl import threadpool_limits

    import minigrid  # noqa: F401
    from agents import PPO, Callback

    env_kw = {"onehot": job["onehot"], "actions": job.get("actions", 7),
              "cue_in_view": job.get("cue_in_view", False)}

    class Probe(Callback):
        def __init__(self):
            self.next, self.eval_time, self.curve = job["eval_freq"], 0.0, []

        def on_iteration(self, model):
            if model.num_timesteps < self.next:
                return True
            self.next += job["eval_freq"]
            t = time.perf_counter()
            total, seen = play(model, job["eval_episodes"], deterministic=not job["sampled"],
                               **env_kw)
            split = split_by_cue(total, seen)
            rate, ret = split["all"], float(np.mean(total))
            self.eval_time += time.perf_counter() - t
            self.curve.append((model.num_timesteps, rate, ret))
            print(f"  seed {job['seed']} step {model.num_timesteps}: success {rate:.2f} "
                  f"(return {ret:.3f}; cue in view at the start {_fmt(split['in_view'])} of "
                  f"{split['n_in_view']}, must turn {_fmt(split['turn'])})", flush=True)
            return not (job["stop_at_target"] and rate >= job["target"])

    with threadpool_limits(1):
        model = PPO(functools.partial(make_env, **env_kw), seed=job["seed"], **job["settings"])
        probe = Probe()
        t0, c0 = time.perf_counter(), time.process_time()
        model.learn(job["budget"], callback=probe)
        wall = time.perf_counter() - t0 - probe.eval_time
        cpu = time.process_time() - c0
        total, seen = play(model, job["eval_episodes"], deterministic=not job["sampled"],
                           **env_kw)
        split = split_by_cue(total, seen)
        rate, ret = split["all"], float(np.mean(total))
        sampled_total, _ = play(model, job["eval_episodes"], deterministic=False, **env_kw)
        if job.get("save_dir"):
            os.makedirs(job["save_dir"], exist_ok=True)
            model.save(os.path.join(job["save_dir"],
                                    f"memory_s7_{job['encoder']}_seed{job['seed']}"))
        model.close()
    first = next((s for s, r, _ in probe.curve if r >= job["target"]), None)
    if first is None and rate >= job["target"]:
        first = model.num_timesteps
    return {**job, "steps": int(model.num_timesteps), "wall": wall, "cpu": cpu,
            "sps": model.num_timesteps / wall, "success": rate, "return": ret,
            "success_sampled": float(np.mean(sampled_total > 0)), "success_by_cue": split,
            "first_at_target": first,
            "curve": probe.curve,
            "load": os.getloadavg()[0]}


def throughput(args) -> None:
    from threadpoolctl import threadpool_limits

    import minigrid  # noqa: F401
    from agents import PPO
    from agents.cli import parse_overrides
    from agents.ppo import PPOConfig
    overrides = parse_overrides(args.set, PPOConfig)
    sps = {"conv": [], "flatten": []}
    with threadpool_limits(1):
        for _ in range(args.repeats):
            for encoder in sps:
                settings, _ = settings_for(encoder, overrides,
                                           earlier=args.earlier_settings)
                model = PPO(ENV, seed=0, **settings)
                model.learn(settings["n_envs"] * settings["n_steps"])  # warm-up iteration
                t0 = time.perf_counter()
                model.learn(args.throughput_steps)
                sps[encoder].append(model.num_timesteps and
                                    args.throughput_steps / (time.perf_counter() - t0))
                model.close()
    conv, flat = max(sps["conv"]), max(sps["flatten"])
    print(f"training steps/s on {ENV} (best of {args.repeats}, {args.throughput_steps} steps, "
          f"1 BLAS thread, load {os.getloadavg()[0]:.1f}): conv {conv:,.0f}, "
          f"flatten {flat:,.0f}; flatten/conv = {flat / conv:.2f}x")


JUNCTION = (5, 3)  # MemoryS7's split: from here "left" faces the upper branch, "right" the lower


def diagnose(model, n_episodes: int = 100, seed: int = 10_000, onehot: bool = False,
             actions: int = 7) -> dict:
    """What the greedy policy does where it must use the cue: at its first arrival at the split
    facing east, the probabilities of ``left`` (towards the upper object) and ``right``
    (towards the lower one), grouped by which branch is correct. A policy that uses the cue
    puts more weight on ``left`` when the upper branch is correct than when the lower one is;
    one that does not gives both groups the same distribution. Also the mean entropy of the
    action distribution over all steps played."""
    policy, predictor = model.policy, model.predictor
    keys = model.config.obs_keys
    rows, entropies = [], []
    left, right = np.zeros((1, 1), int), np.ones((1, 1), int)  # MiniGrid's actions 0 and 1
    for i in range(n_episodes):
        env = make_env(onehot, actions)
        obs, _ = env.reset(seed=seed + i)
        u = env.unwrapped
        upper_correct = u.success_pos[1] < JUNCTION[1]
        state, start, probs = None, True, None
        for _ in range(u.max_steps):
            batch = predictor.normalize({k: np.asarray(obs[k])[None] for k in keys})
            seq = {k: v[None] for k, v in batch.items()}
            state0 = policy.initial_state(1) if state is None else state
            starts = np.array([[start]])
            logp_left, entropy, _, _ = policy.evaluate(seq, left, state0, starts)
            entropies.append(float(entropy[0, 0]))
            if probs is None and tuple(u.agent_pos) == JUNCTION and u.agent_dir == 0:
                logp_right = policy.evaluate(seq, right, state0, starts)[0]
                probs = (float(np.exp(logp_left[0, 0])), float(np.exp(logp_right[0, 0])))
            action, state = model.predict({k: np.asarray(obs[k])[None] for k in keys}, state,
                                          np.array([start]), deterministic=True)
            start = False
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            if terminated or truncated:
                break
        env.close()
        if probs is not None:
            rows.append((upper_correct, *probs))
    out = {"episodes": n_episodes, "reached_split_facing_east": len(rows),
           "mean_entropy": float(np.mean(entropies))}
    for name, want in (("upper_correct", True), ("lower_correct", False)):
        sel = [r for r in rows if r[0] == want]
        out[name] = {"n": len(sel),
                     "p_left": float(np.mean([r[1] for r in sel])) if sel else None,
                     "p_right": float(np.mean([r[2] for r in sel])) if sel else None}
    return out


RULES = ("match", "cue", "layout")


def expert_actions(env, rule: str = "match") -> list[int]:
    """A scripted walk through a freshly reset MemoryS7 whose every choice can be read from
    what the agent has seen: turn round (left, left: the cue comes into view), turn back,
    walk to the split, turn up or down and step forward. MiniGrid's actions: 0 left, 1 right,
    2 forward. Which way it turns at the split depends on ``rule``:

    * ``"match"``: towards the object that matches the cue (the task; the expert succeeds);
    * ``"cue"``: up when the cue is a key (memory alone: what was seen at the start);
    * ``"layout"``: up when the upper object is a key (perception alone: what is in view at
      the split).

    "match" is the exclusive-or of the other two: neither bit alone says anything about it."""
    u = env.unwrapped
    x, y = u.agent_pos
    if u.agent_dir != 0 or y != JUNCTION[1] or x >= JUNCTION[0]:
        raise ValueError("expert_actions needs MemoryS7 just after reset (agent facing east "
                         "in the corridor)")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    cue_key = type(u.grid.get(1, JUNCTION[1] - 1)).__name__ == "Key"
    upper_key = type(u.grid.get(JUNCTION[0], JUNCTION[1] - 2)).__name__ == "Key"
    up = {"match": cue_key == upper_key, "cue": cue_key, "layout": upper_key}[rule]
    if rule == "match" and up != (u.success_pos[1] < JUNCTION[1]):
        raise AssertionError("MemoryS7's layout is not what expert_actions reads")
    return [0, 0, 0, 0] + [2] * (JUNCTION[0] - x) + [0 if up else 1, 2]


def _expert_episodes(n: int, seed0: int, keys, rule: str, onehot: bool, actions: int):
    """``n`` scripted episodes (:func:`expert_actions`), each a list of ``(obs, action)``."""
    episodes = []
    for i in range(n):
        env = make_env(onehot, actions)
        obs, _ = env.reset(seed=seed0 + i)
        steps = []
        for a in expert_actions(env, rule):
            steps.append(({k: np.asarray(obs[k]) for k in keys}, a))
            obs, r, terminated, truncated, _ = env.step(a)
        if rule == "match" and not (terminated and r > 0):
            raise AssertionError("the scripted expert failed an episode")
        env.close()
        episodes.append(steps)
    return episodes


def _stack(episodes, keys, T: int):
    """The episodes as ``(T, N)`` batches, once: observations (a dict), actions, a weight that
    is 1 on each episode's own steps and 0 on the padding after its end (its last step
    repeated), and the episode starts (the first step). :func:`_rows` takes a minibatch."""
    padded = [e + [e[-1]] * (T - len(e)) for e in episodes]
    obs = {k: np.stack([np.stack([o[k] for o, _ in e]) for e in padded], axis=1) for k in keys}
    acts = np.array([[a for _, a in e] for e in padded]).T
    valid = (np.arange(T)[:, None] < np.array([len(e) for e in episodes])[None]).astype(float)
    starts = np.zeros(valid.shape, dtype=bool)
    starts[0] = True
    return obs, acts, valid, starts


def _rows(stacked, idx):
    """Columns ``idx`` (episodes) of :func:`_stack`'s batches."""
    obs, acts, valid, starts = stacked
    return {k: v[:, idx] for k, v in obs.items()}, acts[:, idx], valid[:, idx], starts[:, idx]


def imitate(settings: dict, n_episodes: int = 4_096, epochs: int = 30, batch: int = 64,
            seed: int = 0, lr: float = 1e-3, actions: int = 7, onehot: bool = False,
            eval_episodes: int = 100, rule: str = "match") -> dict:
    """Behaviour cloning of :func:`expert_actions` with the policy PPO builds from
    ``settings``: the same network and observations, trained by supervised learning (Adam,
    ``epochs`` passes over ``n_episodes`` scripted episodes, whole episodes from a zero
    state). Reports the loss per step, the accuracy of the turn at the split on 1,000
    held-out episodes (the probability of the expert's turn above 1/2; every 5 epochs, and
    the first epoch at which it reached 0.9) and, for
    ``rule="match"``, the greedy success on the env. Whether the network learns the turn at
    all, given the answer at every step, separates what the network can learn from what PPO
    finds from a reward on success alone; ``rule`` ``"cue"`` and ``"layout"`` learn the two
    halves of the task's exclusive-or on their own."""
    from agents import PPO
    from rlstm.optim import Adam
    keys = list(settings["obs_keys"])
    model = PPO(functools.partial(make_env, onehot, actions), seed=seed, **settings)
    policy = model.policy
    episodes = _expert_episodes(n_episodes, seed * 1_000_003, keys, rule, onehot, actions)
    held_out = _expert_episodes(1_000, 500_000_000 + seed, keys, rule, onehot, actions)
    T = max(len(e) for e in episodes + held_out)
    rng = np.random.default_rng(seed)
    opt = Adam(policy, lr=lr)
    data, held = _stack(episodes, keys, T), _stack(held_out, keys, T)
    split = [len(e) - 2 for e in held_out]  # the turn, one step before the last

    def turn_accuracy():
        obs_seq, acts, _, starts = held
        logp = policy.evaluate(obs_seq, acts, None, starts)[0]
        return float((np.exp(logp[split, np.arange(len(held_out))]) > 0.5).mean())

    t0 = time.perf_counter()
    losses, curve, eval_time = [], [], 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_episodes)
        total = 0.0
        for b in range(0, n_episodes, batch):
            obs_seq, acts, valid, starts = _rows(data, order[b:b + batch])
            logp, _, _, cache = policy.evaluate(obs_seq, acts, None, starts)
            total += float(-(logp * valid).sum())
            opt.zero_grad()
            policy.backward(-valid / valid.sum(), None, None, cache)
            opt.step()
        losses.append(total / float(data[2].sum()))
        if epoch % 5 == 0 or epoch == epochs:
            t = time.perf_counter()
            curve.append((epoch, losses[-1], turn_accuracy()))
            eval_time += time.perf_counter() - t
    wall = time.perf_counter() - t0 - eval_time
    per_epoch = -(-n_episodes // batch)
    first = next((e for e, _, acc in curve if acc >= 0.9), None)
    out = {"rule": rule, "episodes": n_episodes, "epochs": epochs, "first_loss": losses[0],
           "final_loss": losses[-1], "turn_accuracy": curve[-1][2],
           "first_epoch_at_0.9": first,
           "updates_to_0.9": None if first is None else first * per_epoch,
           "updates": epochs * per_epoch, "curve": curve, "wall": wall}
    if rule == "match":
        out["success_by_cue"] = split_by_cue(*play(model, eval_episodes, onehot=onehot,
                                                   actions=actions))
    model.close()
    return out


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def _leaves(d: dict):
    """``(name, value)`` of a nested settings dict's leaves, named by their last key
    (``policy_kwargs.core_kwargs.forget_bias`` -> ``forget_bias``)."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v)
        else:
            yield k, v


def report(paths) -> None:
    records = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    print("| encoder | settings changed | seed | budget | first success >= target at (steps) "
          "| final success (greedy) | cue in view at the start / must turn | final success "
          "(sampled) | wall-clock | steps/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    for r in sorted(records, key=lambda r: (r["encoder"], str(r.get("overrides")),
                                            bool(r.get("onehot")), r["seed"])):
        first = "–" if r["first_at_target"] is None else f"{r['first_at_target']:,}"
        split = r.get("success_by_cue") or {}
        changed = ", ".join([f"{k}={v}" for k, v in _leaves(r.get("overrides") or {})]
                            + (["one-hot codes"] if r.get("onehot") else [])
                            + (["3 actions"] if r.get("actions", 7) == 3 else [])
                            + (["cue in view at every start"] if r.get("cue_in_view")
                               else [])) or "–"
        print(f"| {r['encoder']} | {changed} | {r['seed']} | {r['budget'] // 1000}k | {first} | "
              f"{r['success']:.2f} | {_fmt(split.get('in_view'))} / {_fmt(split.get('turn'))} | "
              f"{r['success_sampled']:.2f} | {r['wall']:.0f} s | {r['sps']:,.0f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--encoder", choices=["conv", "flatten"], default="conv")
    p.add_argument("--budget", type=int, default=None,
                   help="environment steps (default: the tuned budget of agents.hyperparams)")
    p.add_argument("--eval-freq", type=int, default=50_000)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--stop-at-target", action="store_true")
    p.add_argument("--sampled", action="store_true",
                   help="evaluate with sampled actions instead of greedy ones")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a PPOConfig field, e.g. --set ent_coef=0.02")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="minigrid_results.jsonl")
    p.add_argument("--onehot", action="store_true",
                   help="one-hot the image codes (MiniGrid's OneHotPartialObsWrapper)")
    p.add_argument("--actions", type=int, choices=[3, 7], default=7,
                   help="3: only turn left, turn right and forward (the other four are no-ops "
                        "in this env)")
    p.add_argument("--earlier-settings", action="store_true",
                   help="start from the tuned entry before MemoryS7 was solved (EARLIER: the "
                        "codes as numbers), as the docs' table of attempts did")
    p.add_argument("--cue-in-view", action="store_true",
                   help="a probe: only the starts where the cue is in view at the first step "
                        "(memory without exploration)")
    p.add_argument("--save-dir", default=None,
                   help="save each seed's final model there (memory_s7_ENCODER_seedN.rlstm)")
    p.add_argument("--throughput", action="store_true",
                   help="measure conv vs flatten training steps/s and exit")
    p.add_argument("--throughput-steps", type=int, default=16_384)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--report", nargs="+", default=None, metavar="FILE")
    p.add_argument("--imitate", choices=RULES, default=None,
                   help="train the same network by behaviour cloning of a scripted walk that "
                        "turns at the split by this rule (no reward; one BLAS thread), print "
                        "how well it learned the turn, and exit")
    p.add_argument("--imitate-episodes", type=int, default=4_096)
    p.add_argument("--imitate-epochs", type=int, default=30)
    p.add_argument("--diagnose", default=None, metavar="MODEL",
                   help="a saved model (--save-dir): print its action probabilities at the "
                        "split, by which branch is correct, and exit")
    args = p.parse_args(argv)
    if args.report:
        return report(args.report)
    if args.throughput:
        return throughput(args)
    if args.imitate:
        from agents.cli import parse_overrides
        from agents.ppo import PPOConfig
        settings, _ = settings_for(args.encoder, dict(parse_overrides(args.set, PPOConfig)),
                                   args.onehot, args.earlier_settings)
        from threadpoolctl import threadpool_limits
        for seed in args.seeds:
            with threadpool_limits(1):
                out = imitate(settings, n_episodes=args.imitate_episodes,
                              epochs=args.imitate_epochs, seed=seed, actions=args.actions,
                              onehot=args.onehot, eval_episodes=args.eval_episodes,
                              rule=args.imitate)
            print(json.dumps({"seed": seed, **out}), flush=True)
        return None
    if args.diagnose:
        import minigrid  # noqa: F401
        from agents import PPO
        model = PPO.load(args.diagnose)
        print(json.dumps(diagnose(model, args.eval_episodes, onehot=args.onehot,
                                  actions=args.actions), indent=1))
        return None
    from agents.cli import parse_overrides
    from agents.ppo import PPOConfig
    overrides = parse_overrides(args.set, PPOConfig)
    settings, budget = settings_for(args.encoder, dict(overrides), args.onehot,
                                    args.earlier_settings)
    budget = args.budget or budget
    print(f"PPO on {ENV}{' (image codes one-hot)' if args.onehot else ''}"
          f"{' (3 actions)' if args.actions == 3 else ''}"
          f"{' (cue in view at every start)' if args.cue_in_view else ''}, {args.encoder} "
          f"encoder, budget {budget}, settings {settings}",
          flush=True)
    jobs = [{"seed": s, "encoder": args.encoder, "budget": budget, "settings": settings,
             "eval_freq": args.eval_freq, "eval_episodes": args.eval_episodes,
             "target": args.target, "stop_at_target": args.stop_at_target,
             "sampled": args.sampled, "save_dir": args.save_dir, "overrides": overrides,
             "onehot": args.onehot, "actions": args.actions, "cue_in_view": args.cue_in_view,
             "earlier_settings": args.earlier_settings}
            for s in args.seeds]

    def save(r):
        with open(args.out, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"seed {r['seed']}: first success >= {args.target} at {r['first_at_target']}, "
              f"final success {r['success']:.2f} (sampled {r['success_sampled']:.2f}), "
              f"{r['wall']:.0f} s, {r['sps']:,.0f} steps/s", flush=True)

    if args.jobs <= 1:
        for job in jobs:
            save(run_seed(job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(args.jobs,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(run_seed, j) for j in jobs]):
                save(fut.result())


if __name__ == "__main__":
    main()
