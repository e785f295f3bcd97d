"""OpenAI-ES on Ray: a local Ray cluster by default, or an existing one with --address.

    python examples/es_ray.py                              # starts a local Ray
    python examples/es_ray.py --address auto               # joins the cluster of this node
    python examples/es_ray.py --address ray://head:10001   # a remote cluster (Ray client)

Each generation the center is put in Ray's object store once; one actor per CPU steps its
chunk of the population in lockstep. A dead actor is replaced and its chunk redone. Prints
generations per second and environment steps per second. Needs ``pip install 'rlstm[ray]'``.
"""
import argparse
import time

from agents import OpenAIES


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    ap.add_argument("--workers", type=int, default=None, help="actors (default: all CPUs)")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--generations", type=int, default=30)
    ap.add_argument("--population", type=int, default=256)
    args = ap.parse_args()

    model = OpenAIES(args.env, seed=0, backend="ray", n_workers=args.workers,
                     address=args.address, population_size=args.population)
    model.learn(1)  # one warm-up generation: starts Ray, the actors, their envs and noise
    print(f"{len(model.backend.actors)} Ray actors")
    t0, steps0, start = time.perf_counter(), model.num_timesteps, model.generation

    def report(m):
        row = m.last_row
        print(f"generation {row['iterations']:3d}  center return {row['eval_return_mean']:7.1f}"
              f"  population mean {row['ep_return_mean']:7.1f}")
        return m.generation - start < args.generations  # False stops

    model.learn(10 ** 12, callback=report)
    dt = time.perf_counter() - t0
    print(f"{args.generations / dt:.2f} generations/s, "
          f"{(model.num_timesteps - steps0) / dt:,.0f} env steps/s, "
          f"{model.backend.replaced} actors replaced")
    model.close()
    import ray
    ray.shutdown()


if __name__ == "__main__":
    main()
