"""rlstm PPO vs sb3-contrib RecurrentPPO on the velocity-masked CartPole, same hyperparameters.

For each seed and each library: train, evaluating every ``--eval-freq`` steps (deterministic,
``--eval-episodes`` episodes); report the environment steps and the *training* wall-clock (time
spent evaluating excluded) at which the mean evaluation return first reaches ``--target``
(475), and the training steps per second over the whole run.

    python benchmarks/ppo_vs_sb3.py --seeds 0 1 2
    python benchmarks/ppo_vs_sb3.py --only rlstm

sb3-contrib is the ``bench`` extra (``pip install sb3-contrib`` with CPU torch). Both libraries
run on one thread (``--threads``) so the comparison is per core. The shared hyperparameters are
rlstm's PPO defaults (see docs/agents.md), mapped onto RecurrentPPO: ``batch_size = n_envs *
n_steps / n_minibatches``, ``lstm_hidden_size = hidden_size``, ``enable_critic_lstm = not
shared_core``, ``net_arch = []`` (rlstm's heads read the LSTM output directly), VecNormalize
for observation/reward normalization. Both value losses are ``vf_coef * MSE`` and both vector
envs reset an ending episode within the same step (rlstm's ``autoreset_mode="same_step"``), so
the objectives and the step counts mean the same thing. ``--set key=value`` changes a
``PPOConfig`` field for both libraries (e.g. ``--set n_epochs=10``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ENV = "rlstm/CartPoleNoVel-v1"


def run_rlstm(seed, args):
    import agents
    from agents import PPO
    from agents import Callback

    class Probe(Callback):
        def __init__(self):
            self.next, self.hit, self.curve = args.eval_freq, None, []
            self.eval_time = self.eval_cpu = 0.0

        def on_training_start(self, model):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_iteration(self, model):
            if model.num_timesteps < self.next:
                return True
            self.next += args.eval_freq
            t, c = time.perf_counter(), time.process_time()
            mean, _ = agents.evaluate(model, ENV, args.eval_episodes, seed=10_000 + seed)
            self.eval_time += time.perf_counter() - t
            self.eval_cpu += time.process_time() - c
            train_time = time.perf_counter() - self.t0 - self.eval_time
            train_cpu = time.process_time() - self.c0 - self.eval_cpu
            self.curve.append((model.num_timesteps, mean))
            if mean >= args.target and self.hit is None:
                self.hit = (model.num_timesteps, train_time, train_cpu)
                return not args.stop_at_target
            return True

    probe = Probe()
    model = PPO(ENV, seed=seed, **args.overrides)
    t0 = time.perf_counter()
    model.learn(args.max_steps, callback=probe)
    total = time.perf_counter() - t0 - probe.eval_time
    return probe.hit, model.num_timesteps / total, probe.curve


def sb3_recurrent_ppo(env_id, seed, overrides=None, threads=1, n_envs=8):
    """``(model, venv, eval_env)``: sb3-contrib's RecurrentPPO on ``env_id``.

    With ``overrides`` (a dict of ``PPOConfig`` fields, ``{}`` for rlstm's defaults) it gets
    rlstm's hyperparameters, mapped as the module docstring says; with ``None`` it keeps
    RecurrentPPO's own defaults (``MlpLstmPolicy``, VecNormalize of observations and rewards)
    on ``n_envs`` envs. ``eval_env`` normalises observations with ``venv``'s statistics once
    ``eval_env.obs_rms = venv.obs_rms`` is set before each evaluation.
    """
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import agents  # noqa: F401  (registers rlstm/ envs)
    from agents.ppo import PPOConfig

    torch.set_num_threads(threads)
    if overrides is None:
        venv = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=seed))
        eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=10_000 + seed),
                                training=False, norm_reward=False)
        return RecurrentPPO("MlpLstmPolicy", venv, seed=seed, device="cpu"), venv, eval_env
    c = PPOConfig(**overrides)
    venv = VecNormalize(make_vec_env(env_id, n_envs=c.n_envs, seed=seed), gamma=c.gamma,
                        norm_obs=c.normalize_obs, norm_reward=c.normalize_reward)
    eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=10_000 + seed), training=False,
                            norm_reward=False)
    lr = (lambda p: c.learning_rate * p) if c.lr_schedule == "linear" else c.learning_rate
    clip = (lambda p: c.clip_range * p) if c.clip_schedule == "linear" else c.clip_range
    model = RecurrentPPO(
        "MlpLstmPolicy", venv, n_steps=c.n_steps, batch_size=c.n_envs * c.n_steps // c.n_minibatches,
        n_epochs=c.n_epochs, gamma=c.gamma, gae_lambda=c.gae_lambda, learning_rate=lr,
        clip_range=clip, ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm,
        normalize_advantage=c.normalize_advantage, target_kl=c.target_kl,
        clip_range_vf=c.clip_range_vf, seed=seed, device="cpu",
        policy_kwargs=dict(lstm_hidden_size=c.hidden_size, n_lstm_layers=c.num_layers,
                           enable_critic_lstm=not c.shared_core, shared_lstm=c.shared_core,
                           net_arch=[], ortho_init=False))
    return model, venv, eval_env


def run_sb3(seed, args):
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    model, venv, eval_env = sb3_recurrent_ppo(ENV, seed, args.overrides, args.threads)

    class Probe(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next, self.hit, self.curve = args.eval_freq, None, []
            self.eval_time = self.eval_cpu = 0.0

        def _on_training_start(self):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def _on_step(self):
            if self.num_timesteps < self.next:
                return True
            self.next += args.eval_freq
            t, c = time.perf_counter(), time.process_time()
            eval_env.obs_rms = venv.obs_rms
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=args.eval_episodes,
                                      deterministic=True)
            self.eval_time += time.perf_counter() - t
            self.eval_cpu += time.process_time() - c
            train_time = time.perf_counter() - self.t0 - self.eval_time
            train_cpu = time.process_time() - self.c0 - self.eval_cpu
            self.curve.append((self.num_timesteps, mean))
            if mean >= args.target and self.hit is None:
                self.hit = (self.num_timesteps, train_time, train_cpu)
                return not args.stop_at_target
            return True

    probe = Probe()
    t0 = time.perf_counter()
    model.learn(args.max_steps, callback=probe)
    total = time.perf_counter() - t0 - probe.eval_time
    return probe.hit, model.num_timesteps / total, probe.curve


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=150_000)
    p.add_argument("--eval-freq", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--target", type=float, default=475.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", choices=["rlstm", "sb3"], default=None)
    p.add_argument("--stop-at-target", action="store_true",
                   help="stop each run once the target is reached")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a PPOConfig field for both libraries, e.g. --set n_epochs=10")
    args = p.parse_args(argv)
    from agents.cli import parse_overrides
    from agents.ppo import PPOConfig
    args.overrides = parse_overrides(args.set, PPOConfig)
    from threadpoolctl import threadpool_limits

    runners = {"rlstm": run_rlstm, "sb3-contrib": run_sb3}
    if args.only:
        runners = {k: v for k, v in runners.items() if k.startswith(args.only)}
    print(f"| library | seed | steps to {args.target:g} | train wall-clock to {args.target:g} (s) "
          f"| train CPU to {args.target:g} (s) | train steps/s |")
    print("|---|---|---|---|---|---|")
    results = {}
    with threadpool_limits(args.threads):
        for seed in args.seeds:
            for name, run in runners.items():
                hit, sps, curve = run(seed, args)
                results.setdefault(name, []).append((hit, sps))
                steps = "not reached" if hit is None else str(hit[0])
                secs = "-" if hit is None else f"{hit[1]:.1f}"
                cpu = "-" if hit is None else f"{hit[2]:.1f}"
                print(f"| {name} | {seed} | {steps} | {secs} | {cpu} | {sps:.0f} |", flush=True)
                print(f"<!-- {name} seed {seed} eval curve: "
                      f"{[(s, round(m)) for s, m in curve]} -->", flush=True)
    for name, rs in results.items():
        hits = [h for h, _ in rs if h is not None]
        if hits:
            print(f"{name}: reached {args.target:g} in {len(hits)}/{len(rs)} seeds; median "
                  f"{np.median([h[0] for h in hits]):.0f} steps, "
                  f"{np.median([h[1] for h in hits]):.1f} s wall, "
                  f"{np.median([h[2] for h in hits]):.1f} s CPU; "
                  f"{np.median([s for _, s in rs]):.0f} steps/s")
        else:
            print(f"{name}: never reached {args.target:g}")
    ours, theirs = results.get("rlstm", []), results.get("sb3-contrib", [])
    if all(h is not None for h, _ in ours + theirs) and ours and theirs:
        med = lambda rs, k: float(np.median([h[k] for h, _ in rs]))  # noqa: E731
        print(f"ratios of the medians: {med(theirs, 1) / med(ours, 1):.1f}x less wall-clock, "
              f"{med(ours, 0) / med(theirs, 0):.2f}x the env steps, "
              f"{np.median([s for _, s in ours]) / np.median([s for _, s in theirs]):.1f}x "
              f"the training steps/s (rlstm vs sb3-contrib)")


if __name__ == "__main__":
    main()
