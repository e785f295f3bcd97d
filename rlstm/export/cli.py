"""``rlstm export``: write a saved model as ONNX or C, and optionally check it.

    rlstm export MODEL --format onnx --out policy.onnx [--check]
    rlstm export MODEL --format c --out build/ [--name policy] [--check]

``MODEL`` is a policy file or any trainer's file. ``--check`` steps the artefact next to
``Predictor.predict`` for ``--steps`` steps and prints the largest differences. It records
episodes of the model's own env (``--env ID``, else the ``env_id`` a trainer's file holds)
with the model playing it, or, when no env is at hand (none named, or it cannot be made:
say a ``rlstm/...`` id without ``agents`` imported) or with ``--random``, draws random
observations from the observation space with random episode starts.

Exit status: 0 written (and the check passed), 1 the check failed, 2 bad input (one line on
stderr saying what is wrong).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


class _BadInput(Exception):
    """A command-line problem, reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage and exits; we report one line
        raise _BadInput(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rlstm export",
                description="Export a saved rlstm model (policy or trainer file) as an ONNX "
                            "graph or C99 source, for one recurrent step per call.")
    p.add_argument("model", help="a policy file (rlstm.save) or a trainer's file")
    p.add_argument("--format", required=True, choices=("onnx", "c"),
                   help="onnx: one .onnx file (opset 17); c: NAME.h and NAME.c")
    p.add_argument("--out", required=True,
                   help="onnx: the file to write; c: a folder (ending in /) or a path prefix "
                        "folder/NAME")
    p.add_argument("--name", default=None,
                   help="c: the C prefix of every name (default: policy, or the prefix's name)")
    p.add_argument("--no-value", action="store_true",
                   help="leave out the value head (and a separate critic core)")
    p.add_argument("--primitive-cells", action="store_true",
                   help="onnx: write every cell from MatMul/Sigmoid/Tanh instead of ONNX's "
                        "LSTM and GRU operators")
    p.add_argument("--check", action="store_true",
                   help="step the artefact next to Predictor.predict and report differences")
    p.add_argument("--steps", type=int, default=1000, help="--check: steps (default 1000)")
    p.add_argument("--env", default=None,
                   help="--check: record episodes of this Gymnasium id (default: the env_id "
                        "saved in a trainer's file)")
    p.add_argument("--random", action="store_true",
                   help="--check: random observations even when an env is at hand")
    p.add_argument("--seed", type=int, default=0, help="--check: seed of the observations")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="--check: floats must agree within max(atol, rtol * |reference|) "
                        "(default 1e-5)")
    p.add_argument("--rtol", type=float, default=1e-5, help="--check: (default 1e-5)")
    p.add_argument("--cc", default=None, help="--check, c: the C compiler (default $CC or cc)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rlstm export`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from . import check, to_c, to_onnx
    from .check import first_line
    from .plan import ExportPlan
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.steps < 1:
            raise _BadInput(f"--steps must be >= 1, got {args.steps}")
        if args.atol < 0 or args.rtol < 0:
            raise _BadInput("--atol and --rtol must be >= 0")
        if args.format == "onnx" and args.name is not None:
            raise _BadInput("--name is for --format c (an ONNX file is named by --out)")
        if args.format == "c" and args.primitive_cells:
            raise _BadInput("--primitive-cells is for --format onnx")
        if args.env is not None and args.random:
            raise _BadInput("--env and --random exclude each other")
        plan = ExportPlan(args.model, include_value=not args.no_value)
        if args.format == "onnx":
            written = [to_onnx(plan.predictor, args.out, include_value=not args.no_value,
                               recurrent_ops=not args.primitive_cells)]
        else:
            written = list(to_c(plan.predictor, args.out, name=args.name,
                                include_value=not args.no_value))
    except _BadInput as e:
        print(f"rlstm export: error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, ImportError) as e:
        print(f"rlstm export: error: {first_line(e)}", file=sys.stderr)
        return 2
    for line in plan.describe():
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    if not args.check:
        return 0
    env = None if args.random else (args.env or _saved_env_id(args.model))
    opts = dict(format=args.format, steps=args.steps, seed=args.seed, atol=args.atol,
                rtol=args.rtol, include_value=not args.no_value, cc=args.cc)
    try:
        try:
            report = check(plan.predictor, written[-1], env=env, **opts)
        except ValueError as e:
            if env is None or args.env is not None or "cannot make the env" not in str(e):
                raise
            print(f"rlstm export: the saved env {env!r} is not at hand ({first_line(e)}); "
                  f"checking on random observations", file=sys.stderr)
            report = check(plan.predictor, written[-1], **opts)
    except (OSError, ValueError, TypeError, RuntimeError, ImportError) as e:
        print(f"rlstm export: check failed to run: {first_line(e)}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.ok else 1


def _saved_env_id(path: str) -> str | None:
    """The Gymnasium id a trainer's file was trained on (its header's ``env_id``), if any."""
    from ..io import read
    env_id = read(path)[1].get("env_id")
    return env_id if isinstance(env_id, str) and env_id else None


if __name__ == "__main__":
    sys.exit(main())
