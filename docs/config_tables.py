"""Write the configuration tables of docs/agents.md and docs/evolution.md from the configs.

Each table lists every field of a family's config classes with each trainer's default and the
field's docstring, between ``<!-- config-table:NAME -->`` and ``<!-- /config-table -->``. Run
``python docs/config_tables.py`` after changing a config; ``--check`` exits 1 if a table is
stale (the tests run that check, so the docs cannot drift from the code).
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import sys

from agents import A2CConfig, CMAESConfig, EvolinoConfig, GAConfig, OpenAIESConfig
from agents import PGPEConfig, PPOConfig, REINFORCEConfig, SNESConfig
from rlstm.validation import field_docs

DOCS = pathlib.Path(__file__).resolve().parent
TABLES = {
    "policy-gradient": (DOCS / "agents.md",
                        {"PPO": PPOConfig, "A2C": A2CConfig, "REINFORCE": REINFORCEConfig}),
    "evolution": (DOCS / "evolution.md",
                  {"OpenAIES": OpenAIESConfig, "PGPE": PGPEConfig, "SNES": SNESConfig,
                   "CMAES": CMAESConfig, "GA": GAConfig, "Evolino": EvolinoConfig}),
}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def table(configs: dict[str, type]) -> str:
    """The markdown table: one row per field (in the order of the first config that has it),
    one column per trainer (``–`` where it lacks the field), then the docstring."""
    names, docs = [], {}
    for cls in configs.values():
        for f in dataclasses.fields(cls):
            if f.name not in names:
                names.append(f.name)
        docs = {**field_docs(cls), **docs}
    fields = {label: {f.name: f for f in dataclasses.fields(cls)}
              for label, cls in configs.items()}
    lines = [f"| field | {' | '.join(configs)} | meaning |",
             "|---|" + "---|" * len(configs) + "---|"]
    for name in names:
        cells = [f"`{_default(fields[label][name])!r}`" if name in fields[label] else "–"
                 for label in configs]
        lines.append(f"| `{name}` | {' | '.join(cells)} | {docs.get(name, '')} |")
    return "\n".join(lines)


def render(text: str, name: str, configs: dict[str, type]) -> str:
    pattern = re.compile(rf"(<!-- config-table:{name} -->\n)(?:.*?\n)?(<!-- /config-table -->)",
                         re.S)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- config-table:{name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + table(configs) + "\n" + m.group(2), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
    args = p.parse_args(argv)
    stale = []
    for name, (path, configs) in TABLES.items():
        text = path.read_text()
        new = render(text, name, configs)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"stale configuration tables in {', '.join(stale)}: run python "
              f"docs/config_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
