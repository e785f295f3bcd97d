"""OpenAI-ES (or another evolution trainer) trains an LSTM policy on CartPole-v1 with local
worker processes.

    python examples/es_cartpole.py                 # ~10 s on 2 cores
    python examples/es_cartpole.py --backend serial
    python examples/es_cartpole.py --algo ga       # or pgpe, snes, cmaes, evolino

Antithetic pairs, centered ranks and Adam on the center; the workers receive the center once
per generation and exchange only noise indices and returns. The run stops once the center's
mean return reaches 490, then saves the model, the CSV log and the learning curve.
"""
import argparse

from agents import TRAINERS, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--algo", default="es",
                    choices=["es", "pgpe", "snes", "cmaes", "ga", "evolino"],
                    help="the evolution trainer (default es: OpenAI-ES)")
    ap.add_argument("--backend", default="process", choices=["serial", "process", "ray"])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--timesteps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/es_cartpole")
    args = ap.parse_args()

    model = TRAINERS[args.algo]("CartPole-v1", seed=args.seed, backend=args.backend,
                                n_workers=args.workers, reward_threshold=490, log_dir=args.out)
    model.learn(args.timesteps, progress_bar=True)
    model.close()
    model.save(f"{args.out}/model.rlstm")
    mean, std = evaluate(model, "CartPole-v1", n_episodes=20, seed=1000)
    print(f"{model.generation} generations, {model.num_timesteps} steps; "
          f"evaluation: {mean:.1f} +/- {std:.1f}; logs in {args.out}/")


if __name__ == "__main__":
    main()
