"""Learning results of the policy-gradient trainers with their defaults (the README's table).

    python benchmarks/learning_results.py ppo rlstm/CartPoleNoVel-v1 100000 0

Trains ALGO on ENV for BUDGET steps from SEED with one BLAS thread, evaluating the deterministic
policy every 5,000 steps (10 episodes, eval seed 1000), and prints the first step at which the
mean evaluation return reached 475, the last evaluation and the wall-clock / CPU time.
"""
import sys
import time

from threadpoolctl import threadpool_limits

from agents import A2C, PPO, REINFORCE
from agents.base import EvalCallback


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4:
        raise SystemExit(__doc__)
    algo, env, budget, seed = argv[0], argv[1], int(argv[2]), int(argv[3])
    cls = {"ppo": PPO, "a2c": A2C, "reinforce": REINFORCE}[algo]
    cb = EvalCallback(env, eval_freq=5_000, n_episodes=10, seed=1_000)
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        cls(env, seed=seed).learn(budget, callback=cb)
    first = next((step for step, mean, _ in cb.results if mean >= 475), None)
    print(f"{algo} {env} seed {seed}: first>=475 at {first}, final {cb.results[-1][1]:.0f}, "
          f"{time.perf_counter() - t0:.0f} s wall ({time.process_time() - c0:.0f} s CPU)")


if __name__ == "__main__":
    main()
