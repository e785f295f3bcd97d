"""The deep GA (Such et al. 2017) learns Bakker's T-maze, a task that needs memory.

    python examples/ga_tmaze.py                    # corridor of 10 cells, ~10 s on 2 cores
    python examples/ga_tmaze.py --corridor 20

The goal side is shown only on the first step; the LSTM must carry it down the corridor.
Genomes are lists of noise-table indices: only those cross the wire, never weights. Every member
plays 4 episodes so that both goal sides count in its fitness.
"""
import argparse

import gymnasium as gym

from agents import GA, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corridor", type=int, default=10)
    ap.add_argument("--timesteps", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/ga_tmaze")
    args = ap.parse_args()

    def make_env():
        return gym.make("rlstm/TMaze-v0", corridor_length=args.corridor)

    model = GA(make_env, seed=args.seed, episodes_per_member=4, center_episodes=10,
               reward_threshold=3.9, log_dir=args.out)
    model.learn(args.timesteps, progress_bar=True)
    # the env is a callable here, so name it in the learning curve's title
    model.logger.plot(f"GA on rlstm/TMaze-v0, corridor {args.corridor} (seed {args.seed})")
    model.close()
    model.save(f"{args.out}/model.rlstm")
    print(f"elite genome: {len(model.elite)} mutations "
          f"(indices {list(model.elite)[:5]}{'...' if len(model.elite) > 5 else ''})")
    mean, std = evaluate(model, make_env, n_episodes=50, seed=1000)
    print(f"{model.num_timesteps} steps; evaluation: {mean:.2f} +/- {std:.2f} "
          f"(4.0 = always the right arm)")


if __name__ == "__main__":
    main()
