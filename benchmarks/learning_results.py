"""Learning results of any registered trainer (the README's and docs' learning tables).

    python benchmarks/learning_results.py ppo rlstm/CartPoleNoVel-v1 --seeds 0 1 2
    python benchmarks/learning_results.py ppo rlstm/MountainCarContinuousNoVel-v0 --seeds 0 1 2
    python benchmarks/learning_results.py es CartPole-v1 --seeds 0 1 2 --budget 300000

Trains ALGO on ENV from each seed with one BLAS thread, with the tuned settings and budget of
``agents.hyperparams`` for the pair (the trainer's defaults when there are none; ``--no-tuned``
forces the defaults, ``--budget`` replaces the budget). Every ``--eval-freq`` steps it evaluates
the deterministic policy (10 episodes, seeds 1000..1009; the final model too) and prints, per seed, the first step
at which the mean evaluation return reached the threshold (``--threshold``, default the env's
``reward_threshold``), the last evaluation, and the training wall-clock / CPU time (evaluations included, the final one not).
"""
import argparse
import time

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

from agents import TRAINERS, EvalCallback, evaluate
from agents.hyperparams import tuned


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("algo", choices=sorted(TRAINERS))
    p.add_argument("env")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--eval-freq", type=int, default=None,
                   help="steps between evaluations (default: budget / 20, at least 5000)")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--no-tuned", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field on top of the settings, e.g. --set vf_coef=1")
    args = p.parse_args(argv)
    from agents.cli import parse_overrides
    cls = TRAINERS[args.algo]
    settings, budget = ({}, None) if args.no_tuned else tuned(args.algo, args.env)
    settings.update(parse_overrides(args.set, cls.config_class))
    budget = args.budget or budget or cls.default_timesteps
    freq = args.eval_freq or max(5_000, budget // 20)
    threshold = args.threshold
    if threshold is None:
        threshold = gym.spec(args.env).reward_threshold
    print(f"{args.algo} on {args.env}, budget {budget}, settings {settings or 'defaults'}, "
          f"threshold {threshold}, 1 BLAS thread")
    finals = []
    for seed in args.seeds:
        cb = EvalCallback(args.env, eval_freq=freq, n_episodes=10, seed=1_000)
        t0, c0 = time.perf_counter(), time.process_time()
        with threadpool_limits(1):
            model = cls(args.env, seed=seed, **settings)
            model.learn(budget, callback=cb)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if cb.results[-1][0] != model.num_timesteps:  # the final model, evaluated too
                cb.results.append((model.num_timesteps,
                                   *evaluate(model, args.env, 10, True, seed=1_000)))
            model.close()
        first = (None if threshold is None else
                 next((step for step, mean, _ in cb.results if mean >= threshold), None))
        last_step, last_mean, last_std = cb.results[-1]
        finals.append(last_mean)
        print(f"seed {seed}: first >= {threshold} at {first}, last eval {last_mean:.1f} "
              f"+/- {last_std:.1f} at {last_step}, {wall:.0f} s wall ({cpu:.0f} s CPU)",
              flush=True)
    print(f"last evaluations: mean {np.mean(finals):.1f}, per seed "
          f"{' / '.join(f'{f:.0f}' for f in finals)}")


if __name__ == "__main__":
    main()
