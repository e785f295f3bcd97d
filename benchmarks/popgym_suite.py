"""rlstm's recurrent PPO on the POPGym suite (Morad et al. 2023), with its baselines.

    python benchmarks/popgym_suite.py --seeds 0 1 2 --jobs 16 --out popgym.jsonl
    python benchmarks/popgym_suite.py --levels Easy --seeds 0 --envs RepeatFirst CountRecall
    python benchmarks/popgym_suite.py --report popgym.jsonl

Runs, for every POPGym env family (``agents.hyperparams.POPGYM_FAMILIES``: all that POPGym
1.0.7 registers; the two Labyrinths need ``mazelib``) at each ``--levels`` difficulty and each
``--seeds`` seed:

* ``rlstm``: PPO with the suite's settings and its one budget (``agents.hyperparams``:
  ``POPGYM_PPO``, ``POPGYM_BUDGET``, per-task changes in ``POPGYM_TASK_SETTINGS``);
* ``memoryless``: the same, with the policy's recurrent state zeroed before every step (actor
  and critic cores alike), so it is a feed-forward net of the same size: what the task gives
  without memory;
* ``random``: uniformly random actions;
* ``sb3``: sb3-contrib's RecurrentPPO at the same settings and budget, on ``--sb3-envs`` only
  (skipped when sb3-contrib is not installed).

Envs are POPGym's own classes wrapped as the paper's runs wrap them
(``popgym.baselines.ppo``: ``Antialias(PreviousAction(env))``, the previous action and a
first-step flag added to the observation). POPGym normalises rewards inside each env (every
env scales its reward so that an episode's return lies in [-1, 1], e.g.
``PositionOnlyPendulum.reward_transform``; Battleship's can go a little below -1), so the
returns reported are the envs' own undiscounted episode returns. Per run: the final policy's
mean return over ``--eval-episodes`` episodes with sampled actions (``final``) and with greedy
ones (``greedy``), and POPGym's MMER (max-mean episodic reward: the best mean of the last 100
training episodes over the run), the training wall-clock and CPU time (evaluation excluded)
and steps/s.

Each finished run is appended to ``--out`` (JSON lines) at once; runs already there are
skipped, so an interrupted suite continues where it stopped. ``--jobs N`` runs N runs at a
time in worker processes (one BLAS thread each); learning results are deterministic from the
seed whatever N is, timings are only comparable on an otherwise idle machine. ``--report
FILE...`` turns result files into the Markdown table of docs/agents.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.hyperparams import (POPGYM_BUDGET, POPGYM_FAMILIES, POPGYM_LEVELS,  # noqa: E402
                                tuned)

AGENTS = ("rlstm", "memoryless", "random", "sb3")
SB3_ENVS = ("RepeatPreviousEasy", "PositionOnlyCartPoleEasy", "PositionOnlyPendulumEasy")
NEEDS_MAZELIB = ("LabyrinthExplore", "LabyrinthEscape")
MARGIN = 0.05
"""How far (on POPGym's [-1, 1] return scale) rlstm's mean must be above the memoryless
baseline's, with no seed of rlstm below a seed of the baseline, to count as beating it."""

PAPER_MMER_AGGREGATE = {"GRU": 0.349}
"""POPGym's aggregate (the mean MMER over its tasks, all three difficulties): the best of its 13
memory models, GRU."""


# ------------------------------------------------------------------------------- task list
def task_id(family: str, level: str) -> str:
    """POPGym's Gymnasium id, ``popgym-{family}{level}-v0``."""
    return f"popgym-{family}{level}-v0"


def task_list(families=None, levels=None) -> list[tuple[str, str]]:
    """``[(family, level), ...]`` in POPGym's order, levels inner. ``families`` may name a
    family (``RepeatFirst``) or a task (``RepeatFirstEasy``); unknown names are an error."""
    levels = list(levels or POPGYM_LEVELS)
    for level in levels:
        if level not in ("Easy", "Medium", "Hard"):
            raise ValueError(f"unknown level {level!r}: Easy, Medium or Hard")
    tasks = [(f, lv) for f in POPGYM_FAMILIES for lv in levels]
    if not families:
        return tasks
    known = {f for f in POPGYM_FAMILIES} | {f + lv for f, lv in tasks}
    unknown = [n for n in families if n not in known]
    if unknown:
        raise ValueError(f"unknown POPGym env(s) {unknown}: one of {list(POPGYM_FAMILIES)}, "
                         f"optionally with the level (RepeatFirstEasy)")
    return [(f, lv) for f, lv in tasks if f in families or f + lv in families]


def have_mazelib() -> bool:
    import importlib.util
    return importlib.util.find_spec("mazelib") is not None


def make_env(family: str, level: str):
    """A POPGym env as the paper's runs see it: ``Antialias(PreviousAction(env))``."""
    import popgym.envs
    from popgym import wrappers
    cls = next((c for c, info in popgym.envs.ALL.items()
                if info["id"] == task_id(family, level)), None)
    if cls is None:
        raise ValueError(f"POPGym has no {task_id(family, level)}"
                         + (" (the Labyrinths need mazelib)" if family in NEEDS_MAZELIB else ""))
    return wrappers.Antialias(wrappers.PreviousAction(cls()))


def env_factory(family: str, level: str):
    """A zero-argument callable for the trainers (picklable: a partial, not a lambda)."""
    import functools
    return functools.partial(make_env, family, level)


# ------------------------------------------------------------------------------ statistics
def mmer(episode_means) -> float | None:
    """POPGym's max-mean episodic reward: the largest of the logged means of the recent
    training episodes (None and NaN entries skipped; None when there are none)."""
    vals = [float(v) for v in episode_means if v is not None and math.isfinite(float(v))]
    return max(vals) if vals else None


def summary(values) -> dict | None:
    """``{"mean", "std", "min", "max", "n"}`` of the finite values (None if none)."""
    vals = np.array([v for v in values if v is not None and math.isfinite(v)], float)
    if vals.size == 0:
        return None
    return {"mean": float(vals.mean()), "std": float(vals.std()), "min": float(vals.min()),
            "max": float(vals.max()), "n": int(vals.size)}


def beats(ours: dict | None, baseline: dict | None, margin: float = MARGIN) -> bool | None:
    """Whether ``ours`` clearly beats ``baseline`` (both :func:`summary` dicts): its mean is
    at least ``margin`` higher and its worst seed is above the baseline's best. None when
    either is missing."""
    if ours is None or baseline is None:
        return None
    return ours["mean"] - baseline["mean"] >= margin and ours["min"] > baseline["max"]


# ------------------------------------------------------------------------------------ runs
@contextlib.contextmanager
def memoryless_cores():
    """Within the block every ``rlstm.LSTM`` starts each step from a zero state: ``step``
    ignores the state it is given, ``forward`` resets before every step. A policy built on it
    is a feed-forward net of the same shape (the memoryless baseline). Restored on exit."""
    from rlstm import LSTM
    saved = {k: LSTM.__dict__[k] for k in ("forward", "step") if k in LSTM.__dict__}
    forward, step = LSTM.forward, LSTM.step

    def forward_memoryless(self, x, state=None, resets=None):
        return forward(self, x, None, np.ones(np.shape(x)[:2], dtype=bool))

    def step_memoryless(self, x_t, state=None):
        return step(self, x_t, None)

    LSTM.forward, LSTM.step = forward_memoryless, step_memoryless
    try:
        yield
    finally:
        for k in ("forward", "step"):
            if k in saved:
                setattr(LSTM, k, saved[k])
            else:
                delattr(LSTM, k)


def settings_for(family: str, level: str, overrides: dict | None = None) -> dict:
    settings, _ = tuned("ppo", task_id(family, level))
    settings.update(overrides or {})
    return settings


def job_key(job: dict) -> tuple:
    return (job["family"], job["level"], job["agent"], job["seed"], job["budget"])


def run_job(job: dict) -> dict:
    """One run: trains (``rlstm``, ``memoryless``, ``sb3``) or samples (``random``), then
    evaluates; returns the result record."""
    from threadpoolctl import threadpool_limits
    family, level, agent, seed = job["family"], job["level"], job["agent"], job["seed"]
    # some POPGym envs draw from NumPy's global generator (CountRecall, the card decks)
    np.random.seed(seed)
    record = {**job, "env": task_id(family, level), "host": platform.node(),
              "cpus": os.cpu_count(), "load_start": os.getloadavg()[0]}
    with threadpool_limits(1):
        if agent == "random":
            record.update(random_returns(family, level, job["eval_episodes"], seed))
        elif agent == "sb3":
            record.update(run_sb3(job))
        else:
            with memoryless_cores() if agent == "memoryless" else contextlib.nullcontext():
                record.update(run_rlstm(job))
    record["load_end"] = os.getloadavg()[0]
    return record


def run_rlstm(job: dict) -> dict:
    import agents
    from agents import PPO
    make = env_factory(job["family"], job["level"])
    model = PPO(make, seed=job["seed"], **job["settings"])
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(job["budget"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = model.logger.rows
    n, seed = job["eval_episodes"], 10_000
    final = agents.evaluate(model, make, n, deterministic=False, seed=seed)
    greedy = agents.evaluate(model, make, n, deterministic=True, seed=seed)
    model.close()
    return {"steps": int(model.num_timesteps), "wall": wall, "cpu": cpu,
            "sps": model.num_timesteps / wall, "mmer": mmer(r.get("ep_return_mean") for r in rows),
            "final": final[0], "final_std": final[1], "greedy": greedy[0],
            "greedy_std": greedy[1],
            "curve": [(int(r["timesteps"]), r.get("ep_return_mean")) for r in rows[::8]]}


def random_returns(family: str, level: str, n: int, seed: int) -> dict:
    env = make_env(family, level)
    env.action_space.seed(seed)
    returns = []
    for i in range(n):
        env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(r)
            done = terminated or truncated
        returns.append(total)
    return {"final": float(np.mean(returns)), "final_std": float(np.std(returns)),
            "steps": 0, "wall": 0.0, "cpu": 0.0}


def run_sb3(job: dict) -> dict:  # pragma: no cover - needs sb3-contrib (the bench extra)
    """sb3-contrib's RecurrentPPO at the rlstm settings, mapped as benchmarks/ppo_vs_sb3.py
    maps them. SB3 takes no Tuple observations, so the POPGym Tuple becomes a Dict of its
    parts (``TupleToDict``, the one adaptation), read by ``MultiInputLstmPolicy`` (discrete
    parts one-hot, as rlstm encodes them); VecNormalize normalises the Box parts only."""
    import gymnasium as gym
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.ppo import PPOConfig

    class TupleToDict(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Dict(
                {str(i): s for i, s in enumerate(env.observation_space.spaces)})

        def observation(self, obs):
            return {str(i): o for i, o in enumerate(obs)}

    torch.set_num_threads(1)
    c = PPOConfig(**job["settings"])
    make = env_factory(job["family"], job["level"])
    seed = job["seed"]
    venv = make_vec_env(lambda: TupleToDict(make()), n_envs=c.n_envs, seed=seed)
    box_keys = [k for k, s in venv.observation_space.spaces.items()
                if isinstance(s, gym.spaces.Box)]
    venv = VecNormalize(venv, gamma=c.gamma, norm_obs=c.normalize_obs and bool(box_keys),
                        norm_reward=c.normalize_reward, norm_obs_keys=box_keys or None)
    lr = (lambda p: c.learning_rate * p) if c.lr_schedule == "linear" else c.learning_rate
    clip = (lambda p: c.clip_range * p) if c.clip_schedule == "linear" else c.clip_range
    model = RecurrentPPO(
        "MultiInputLstmPolicy", venv, n_steps=c.n_steps,
        batch_size=c.n_envs * c.n_steps // c.n_minibatches, n_epochs=c.n_epochs,
        gamma=c.gamma, gae_lambda=c.gae_lambda, learning_rate=lr, clip_range=clip,
        ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm, seed=seed,
        device="cpu", policy_kwargs=dict(lstm_hidden_size=c.hidden_size,
                                         n_lstm_layers=c.num_layers,
                                         enable_critic_lstm=not c.shared_core,
                                         shared_lstm=c.shared_core, net_arch=[],
                                         ortho_init=False))
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(job["budget"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    eval_env = VecNormalize(make_vec_env(lambda: TupleToDict(make()), n_envs=1,
                                         seed=10_000 + seed), training=False, norm_reward=False,
                            norm_obs=venv.norm_obs, norm_obs_keys=box_keys or None)
    if venv.norm_obs:  # VecNormalize has no obs_rms when it normalises nothing
        eval_env.obs_rms = venv.obs_rms
    means = {}
    for det in (False, True):
        rets, _ = evaluate_policy(model, eval_env, n_eval_episodes=job["eval_episodes"],
                                  deterministic=det, return_episode_rewards=True)
        means[det] = (float(np.mean(rets)), float(np.std(rets)))
    ep = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else []
    return {"steps": int(model.num_timesteps), "wall": wall, "cpu": cpu,
            "sps": model.num_timesteps / wall, "mmer": None,
            "last100": float(np.mean(ep)) if ep else None,
            "final": means[False][0], "final_std": means[False][1],
            "greedy": means[True][0], "greedy_std": means[True][1]}


# ---------------------------------------------------------------------------------- report
def read_results(paths) -> list[dict]:
    records = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


def _fmt(s: dict | None, spread: bool = True) -> str:
    if s is None:
        return "–"
    if s["n"] == 1 or not spread:
        return f"{s['mean']:.2f}"
    return f"{s['mean']:.2f} ({s['min']:.2f}…{s['max']:.2f})"


def _fmt_seconds(s: dict | None) -> str:
    if s is None:
        return "–"
    return f"{s['mean']:.0f} s" if s["mean"] >= 10 else f"{s['mean']:.1f} s"


def format_table(records: list[dict]) -> str:
    """The Markdown table of docs/agents.md from result records: one row per task, the mean
    (and min…max over seeds) of each agent's final return, rlstm's MMER, whether rlstm beats
    the memoryless baseline, rlstm's training steps/s and wall-clock per run."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        groups.setdefault((r["family"], r["level"]), {}).setdefault(r["agent"], []).append(r)
    order = {f: i for i, f in enumerate(POPGYM_FAMILIES)}
    lv = {"Easy": 0, "Medium": 1, "Hard": 2}
    lines = ["| task | seeds | budget | rlstm final | rlstm greedy | rlstm MMER | memoryless "
             "final | random | beats memoryless | steps/s | wall-clock per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    mmers = []
    for (family, level) in sorted(groups, key=lambda k: (lv.get(k[1], 9), order.get(k[0], 99))):
        g = groups[(family, level)]
        ours = g.get("rlstm", [])
        final = summary([r["final"] for r in ours])
        greedy = summary([r.get("greedy") for r in ours])
        m = summary([r.get("mmer") for r in ours])
        if m is not None:
            mmers.append(m["mean"])
        ml = summary([r["final"] for r in g.get("memoryless", [])])
        rnd = summary([r["final"] for r in g.get("random", [])])
        b = beats(final, ml)
        sps = f"{np.mean([r['sps'] for r in ours]):,.0f}" if ours else "–"
        budget = sorted({r["budget"] for r in ours})
        seeds = sorted({r["seed"] for r in ours})
        lines.append(
            f"| {family}{level} | {', '.join(map(str, seeds)) or '–'} | "
            f"{'/'.join(f'{x // 1000}k' for x in budget) or '–'} | {_fmt(final)} | "
            f"{_fmt(greedy)} | {_fmt(m)} | {_fmt(ml)} | {_fmt(rnd, False)} | "
            f"{'–' if b is None else ('yes' if b else '**no**')} | "
            f"{sps} | {_fmt_seconds(summary([r['wall'] for r in ours]))} |")
    if mmers:
        lines.append("")
        lines.append(f"Mean rlstm MMER over these {len(mmers)} tasks: {np.mean(mmers):.3f} "
                     f"(POPGym's aggregate over its tasks at all three difficulties: GRU "
                     f"{PAPER_MMER_AGGREGATE['GRU']}, the best of 13 models).")
    return "\n".join(lines)


def format_sb3(records: list[dict]) -> str:
    """rlstm vs sb3-contrib on the tasks both ran: steps/s, wall-clock and the ratio, over the
    seeds both ran at the same budget (rlstm's other seeds are left out of the comparison)."""
    pairs: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        if r["agent"] in ("rlstm", "sb3"):
            key = (r["family"], r["level"], r["budget"])
            pairs.setdefault(key, {}).setdefault(r["agent"], []).append(r)
    rows = []
    for (family, level, budget), g in sorted(pairs.items()):
        if "sb3" not in g or "rlstm" not in g:
            continue
        seeds = {r["seed"] for r in g["sb3"]} & {r["seed"] for r in g["rlstm"]}
        if not seeds:
            continue
        ours = [r for r in g["rlstm"] if r["seed"] in seeds]
        theirs = [r for r in g["sb3"] if r["seed"] in seeds]
        w_ours, w_theirs = np.mean([r["wall"] for r in ours]), np.mean([r["wall"] for r in theirs])
        rows.append(f"| {family}{level} | {budget // 1000}k | "
                    f"{', '.join(str(x) for x in sorted(seeds))} | "
                    f"{_fmt(summary([r['final'] for r in ours]))} | "
                    f"{_fmt(summary([r['final'] for r in theirs]))} | "
                    f"{np.mean([r['sps'] for r in ours]):,.0f} | "
                    f"{np.mean([r['sps'] for r in theirs]):,.0f} | {w_ours:.0f} s | "
                    f"{w_theirs:.0f} s | {w_theirs / w_ours:.1f}× |")
    if not rows:
        return "No task has both rlstm and sb3-contrib results."
    return "\n".join(["| task | budget | seeds | rlstm final | sb3-contrib final | rlstm steps/s "
                      "| sb3-contrib steps/s | rlstm wall | sb3-contrib wall | wall-clock ratio |",
                      "|---|---|---|---|---|---|---|---|---|---|", *rows])


# ------------------------------------------------------------------------------------ main
def build_jobs(args, sb3_available: bool) -> list[dict]:
    from agents.cli import parse_overrides
    from agents.ppo import PPOConfig
    overrides = parse_overrides(args.set, PPOConfig)
    jobs = []
    for family, level in task_list(args.envs, args.levels):
        if family in NEEDS_MAZELIB and not have_mazelib():
            print(f"skipped {task_id(family, level)}: needs mazelib (pip install mazelib)")
            continue
        settings = settings_for(family, level, overrides)
        for agent in args.agents:
            if agent == "sb3" and (family + level not in args.sb3_envs or not sb3_available):
                continue
            for seed in (args.seeds if agent != "random" else args.seeds[:1]):
                jobs.append({"family": family, "level": level, "agent": agent, "seed": seed,
                             "budget": 0 if agent == "random" else args.budget,
                             "settings": {} if agent == "random" else settings,
                             "eval_episodes": args.eval_episodes})
    return jobs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", nargs="+", default=None, metavar="NAME",
                   help="env families (RepeatFirst) or tasks (RepeatFirstEasy); default all")
    p.add_argument("--levels", nargs="+", default=list(POPGYM_LEVELS),
                   choices=["Easy", "Medium", "Hard"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--agents", nargs="+", default=["rlstm", "memoryless", "random", "sb3"],
                   choices=AGENTS)
    p.add_argument("--sb3-envs", nargs="+", default=list(SB3_ENVS), metavar="TASK",
                   help="the tasks sb3-contrib runs on")
    p.add_argument("--budget", type=int, default=POPGYM_BUDGET,
                   help="environment steps per run (default: the suite's, "
                        "agents.hyperparams.POPGYM_BUDGET)")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a PPOConfig field for every task, e.g. --set n_epochs=4")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (worker processes)")
    p.add_argument("--out", default="popgym_results.jsonl",
                   help="JSON-lines file the results are appended to")
    p.add_argument("--list", action="store_true", help="print the runs and exit")
    p.add_argument("--report", nargs="+", default=None, metavar="FILE",
                   help="print the Markdown tables of these result files and exit")
    args = p.parse_args(argv)

    if args.report:
        records = read_results(args.report)
        print(format_table(records))
        print()
        print(format_sb3(records))
        return

    import importlib.util
    sb3_available = importlib.util.find_spec("sb3_contrib") is not None
    if "sb3" in args.agents and not sb3_available:
        print("sb3-contrib is not installed: its runs are skipped (pip install sb3-contrib)")
    jobs = build_jobs(args, sb3_available)
    done = set()
    if os.path.exists(args.out):
        done = {job_key(r) for r in read_results([args.out])}
    todo = [j for j in jobs if job_key(j) not in done]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already in {args.out}; running "
          f"{len(todo)} with {args.jobs} job(s)", flush=True)
    if args.list:
        for j in todo:
            print(f"  {task_id(j['family'], j['level'])} {j['agent']} seed {j['seed']} "
                  f"budget {j['budget']}")
        return

    def save(record):
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{record['env']:42s} {record['agent']:10s} seed {record['seed']}: final "
              f"{record['final']:+.3f}"
              + (f", greedy {record['greedy']:+.3f}, MMER {record['mmer']:+.3f}, "
                 f"{record['sps']:,.0f} steps/s, {record['wall']:.0f} s"
                 if record.get("mmer") is not None else ""), flush=True)

    if args.jobs <= 1:
        for job in todo:
            save(run_job(job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        kw = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 **kw) as pool:
            futures = [pool.submit(run_job, job) for job in todo]
            for fut in as_completed(futures):
                save(fut.result())
    print()
    print(format_table(read_results([args.out])))


if __name__ == "__main__":
    main()
