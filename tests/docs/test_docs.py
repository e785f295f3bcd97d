"""The docs run: every code block of README.md and docs/*.md, and what it says it prints.

Python blocks. Each ```` ```python ```` block is one test. The blocks of a page run in order in
one namespace (a later block may use an earlier block's names), in a temporary folder of their
own, with ``MPLBACKEND=Agg``; running one block alone runs the page's earlier blocks first.
HTML comments right above the fence (one per line, invisible on GitHub) say how:

    <!-- docs-test: skip (why) -->           not run: reported by pytest as skipped, with why
    <!-- docs-test: slow (why) -->           run only with the slow tests; later blocks of
                                             the page must not need its names
    <!-- docs-test: requires MODULE ... -->  skipped when a MODULE is not installed
    <!-- docs-test: namespace NAME -->       run in the page's namespace NAME instead of
                                             its main one (side-by-side snippets of
                                             another library that reuse its names)
    <!-- docs-test: replace `OLD` `NEW` (why) -->
                                             run with OLD replaced by NEW (a smaller budget
                                             where the point stays true); OLD must occur
    <!-- docs-test: setup
    code run first, in the page's namespace (inputs a synopsis leaves to the reader)
    -->
    <!-- docs-test: output rtol=R atol=A --> the tolerance of the numbers in the stated output
    <!-- docs-test: signature -->            the block is one signature, ``NAME(PARAMETERS)``,
                                             not run but compared with ``inspect.signature``
                                             of NAME: names, order, kinds and defaults

Stated output. A block states what it prints with a ``# -> TEXT`` or ``# prints TEXT``
comment, or in the paragraph right after it ("It prints `TEXT`"). Each stated line must be
printed, in order: the words as written (``...`` stands for anything), every number within
``atol + rtol * |number|`` of the stated one (exact when no ``output`` marker says otherwise).

Shell blocks are not run. Every ``rlstm ...`` command line in a ```` ```bash ```` block is
parsed by the real parser (``agents.cli.build_parser``, ``rlstm.export.cli.build_parser``),
its ALGO looked up and its ``--set`` values typed by the config; every ``python
examples|benchmarks|docs/X.py`` command, there or in the prose, names a script that exists
and options that script defines; ``rlstm ...`` commands in the prose use options that exist.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import pathlib
import re
import shlex
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DIRECTIVES = ("skip", "slow", "requires", "namespace", "replace", "setup", "output",
              "signature")


@dataclasses.dataclass
class Block:
    page: str                      # path relative to the repository root
    index: int                     # position among the page's python blocks
    line: int                      # line of the opening fence (1-based)
    lang: str
    code: str
    markers: list                  # [(directive, argument, line of the marker)]
    after: str                     # the paragraph right after the closing fence

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def marker(self, name):
        return [(arg, line) for d, arg, line in self.markers if d == name]


def parse_page(path: pathlib.Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown page, with their markers, and the errors in markers."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, errors, pending, i = [], [], [], 0
    n_python = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!-- docs-test:"):
            start = i
            while "-->" not in lines[i]:
                i += 1
                if i == len(lines):
                    errors.append(f"{rel}:{start + 1}: unclosed docs-test comment")
                    return blocks, errors
            text = "\n".join(lines[start:i + 1])
            body = text[len("<!-- docs-test:"):text.rindex("-->")].strip()
            directive = body.split(maxsplit=1)[0] if body else ""
            if directive not in DIRECTIVES:
                errors.append(f"{rel}:{start + 1}: unknown docs-test directive {directive!r} "
                              f"(one of {', '.join(DIRECTIVES)})")
            arg = (body.partition("\n")[2] if directive == "setup"   # the code, from the next line
                   else " ".join(body[len(directive):].split()))
            pending.append((directive, arg, start + 1))
            i += 1
            continue
        m = re.match(r"^```(\w*)", line)
        if m:
            fence, body = i, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            j = i + 1
            while j < len(lines) and lines[j].strip() == "":
                j += 1
            after = []
            while j < len(lines) and lines[j].strip() and not lines[j].startswith("```"):
                after.append(lines[j])
                j += 1
            lang = m.group(1)
            blocks.append(Block(rel, n_python if lang == "python" else -1, fence + 1, lang,
                                "\n".join(body) + "\n", pending, "\n".join(after)))
            n_python += lang == "python"
            if pending and lang != "python":
                errors.append(f"{rel}:{fence + 1}: docs-test markers above a {lang or 'plain'} "
                              f"block (only python blocks run)")
            pending = []
            i += 1
            continue
        if pending:
            errors.append(f"{rel}:{pending[0][2]}: docs-test marker not right above a fence")
            pending = []
        i += 1
    return blocks, errors


PARSED = {p.relative_to(ROOT).as_posix(): parse_page(p) for p in PAGES}
PYTHON = [b for blocks, _ in PARSED.values() for b in blocks if b.lang == "python"]
SHELL = [b for blocks, _ in PARSED.values() for b in blocks if b.lang in ("bash", "sh", "shell")]


def _not_run(block: Block) -> bool:
    """Blocks that a later block of the page must not count on (skipped or slow)."""
    return bool(block.marker("skip") or block.marker("slow"))


def _param(block: Block):
    marks = [pytest.mark.skip(reason=f"{block.id}: {arg}") for arg, _ in block.marker("skip")]
    if block.marker("slow"):
        marks.append(pytest.mark.slow)
    return pytest.param(block, id=block.id, marks=marks)


# ------------------------------------------------------------------------- stated output
NUMBER = r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?"


def stated_outputs(block: Block) -> list[str]:
    """What the block says it prints: ``# -> TEXT`` / ``# prints TEXT`` comments, then
    "prints `TEXT`" in the paragraph after it."""
    said = [m.group(1).strip() for m in re.finditer(r"#\s*(?:->|prints)\s+(.+)$", block.code,
                                                    re.MULTILINE)]
    said += [m.group(1) for m in re.finditer(r"\bprints:?\s+`([^`]+)`", block.after)]
    return said


def _number(text: str) -> float:
    return float(text.replace("−", "-").replace(",", ""))


def line_pattern(expected: str) -> re.Pattern:
    """A regex for one stated line: its words as written, a group per number, ``...`` as
    anything."""
    out = []
    for token in re.split(rf"(\s*\.\.\.\s*|{NUMBER}|\s+)", expected.strip()):
        if not token:
            continue
        if token.strip() == "...":
            out.append(".*?")
        elif token.isspace():
            out.append(r"\s+")
        elif re.fullmatch(NUMBER, token):
            out.append(f"({NUMBER})")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))


def compare_output(printed: str, stated: list[str], rtol: float = 0.0,
                   atol: float = 0.0) -> list[str]:
    """The problems (none: it matches): each stated line must be printed, in this order, with
    every number within ``atol + rtol * |stated|``."""
    lines = [ln.strip() for ln in printed.splitlines() if ln.strip()]
    problems, start = [], 0
    for expected in stated:
        pattern = line_pattern(expected)
        found = next(((k, m) for k in range(start, len(lines))
                      if (m := pattern.fullmatch(lines[k]))), None)
        if found is None:
            problems.append(f"the docs say it prints `{expected}`; it did not (it printed: "
                            f"{printed.strip()!r})")
            continue
        k, m = found
        start = k + 1
        wanted = [_number(x) for x in re.findall(NUMBER, expected)]
        got = [_number(x) for x in m.groups()]
        bad = [(w, g) for w, g in zip(wanted, got) if abs(g - w) > atol + rtol * abs(w)]
        if bad:
            problems.append(f"printed `{lines[k]}`, the docs say `{expected}` "
                            f"(rtol={rtol}, atol={atol}): "
                            + ", ".join(f"{g:g} is not {w:g}" for w, g in bad))
    return problems


def _tolerance(block: Block) -> dict:
    tol = {"rtol": 0.0, "atol": 0.0}
    for arg, line in block.marker("output"):
        for item in arg.split():
            key, _, value = item.partition("=")
            if key not in tol:
                raise ValueError(f"{block.page}:{line}: output takes rtol=... atol=..., "
                                 f"got {item!r}")
            tol[key] = float(value)
    return tol


# ------------------------------------------------------------------------- running pages
class PageRun:
    """One page's namespace, its folder, the blocks run so far and the first that failed."""

    def __init__(self, folder: pathlib.Path):
        self.folder, self.namespace = folder, {"__name__": "docs"}
        self.named: dict[str, dict] = {}  # the namespaces of `namespace NAME` blocks
        self.done, self.failed = set(), None

    def close(self):
        import gymnasium as gym

        import agents
        for value in [v for ns in (self.namespace, *self.named.values())
                      for v in ns.values()]:
            if isinstance(value, (agents.Trainer, gym.Env, gym.vector.VectorEnv)):
                with contextlib.suppress(Exception):
                    value.close()


@pytest.fixture(scope="session")
def page_runs(tmp_path_factory):
    runs: dict[str, PageRun] = {}

    def get(page: str) -> PageRun:
        if page not in runs:
            runs[page] = PageRun(tmp_path_factory.mktemp(page.replace("/", "_")))
        return runs[page]
    yield get
    for run in runs.values():
        run.close()


def execute(block: Block, run: PageRun) -> str:
    """Run the block (its setup first) in the page's namespace and folder; return its
    stdout. Tracebacks name the Markdown file and line."""
    for arg, _ in block.marker("requires"):
        for module in arg.split():
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"{block.id}: needs {module}")
    names = [arg.strip() for arg, _ in block.marker("namespace")]
    namespace = (run.named.setdefault(names[0], {"__name__": "docs"}) if names
                 else run.namespace)
    code = block.code
    for arg, line in block.marker("replace"):
        m = re.fullmatch(r"`([^`]+)`\s+`([^`]*)`(?:\s*\(.*\))?", arg, re.DOTALL)
        assert m, f"{block.page}:{line}: write replace `OLD` `NEW` (why)"
        assert m.group(1) in code, f"{block.page}:{line}: `{m.group(1)}` is not in the block"
        code = code.replace(m.group(1), m.group(2))
    path = str(ROOT / block.page)
    if block.marker("signature"):
        check_signature(block, code, namespace)
        return ""
    sources = [(textwrap.dedent(arg), line) for arg, line in block.marker("setup")]
    sources.append((code, block.line))
    out = io.StringIO()
    old = os.getcwd()
    os.chdir(run.folder)
    try:
        with contextlib.redirect_stdout(out):
            for source, line in sources:
                exec(compile("\n" * line + source, path, "exec"), namespace)
    finally:
        os.chdir(old)
    return out.getvalue()


def check_signature(block: Block, code: str, namespace: dict) -> None:
    """``NAME(PARAMETERS)`` in the block must be NAME's signature (annotations aside)."""
    import inspect
    m = re.fullmatch(r"\s*([\w.]+)\((.*)\)\s*", code, re.DOTALL)
    assert m, f"{block.id}: a signature block holds one NAME(PARAMETERS)"
    scratch = dict(namespace)
    exec(f"def _documented({m.group(2)}): pass", scratch)
    real = inspect.signature(eval(m.group(1), scratch))
    said = inspect.signature(scratch["_documented"])

    def plain(sig):
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]
    assert plain(said) == plain(real), \
        f"{block.id}: the docs say {m.group(1)}{said}, the code has {m.group(1)}{real}"


@pytest.mark.parametrize("block", [_param(b) for b in PYTHON])
def test_python_block_runs_and_prints_what_it_says(block, page_runs, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run = page_runs(block.page)
    for earlier in PYTHON:
        if earlier.page != block.page or earlier.index >= block.index or run.failed:
            continue
        if earlier.index not in run.done and not _not_run(earlier):
            try:
                execute(earlier, run)
            except pytest.skip.Exception:
                pass  # a block that needs a missing module: later blocks do not need its names
            except BaseException:
                run.failed = earlier.id
                raise
            run.done.add(earlier.index)
    if run.failed:
        pytest.skip(f"not run: an earlier block of {block.page} failed ({run.failed})")
    try:
        printed = execute(block, run)
    except pytest.skip.Exception:
        raise
    except BaseException:
        run.failed = block.id
        raise
    run.done.add(block.index)
    problems = compare_output(printed, stated_outputs(block), **_tolerance(block))
    assert not problems, f"{block.id}: " + "\n".join(problems)


def test_markers_are_well_formed_and_every_output_marker_has_a_stated_output():
    errors = [e for _, errs in PARSED.values() for e in errs]
    for b in PYTHON:
        if b.marker("output") and not stated_outputs(b):
            errors.append(f"{b.id}: an output marker, but no stated output")
        for arg, line in b.marker("skip") + b.marker("slow"):
            if not re.fullmatch(r"\(.+\)", arg):
                errors.append(f"{b.page}:{line}: say why in parentheses")
        try:
            _tolerance(b)
        except ValueError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("printed,stated,tol,ok", [
    ("MSE 0.0017 (predicting zero: 1.1002)", "MSE 0.0035 (predicting zero: 1.1002)",
     {"rtol": 0.2}, False),
    ("MSE 0.0018 (predicting zero: 1.1002)", "MSE 0.0017 (predicting zero: 1.1002)",
     {"rtol": 0.2}, True),
    ("MSE 0.0017 (predicting one: 1.1002)", "MSE 0.0017 (predicting zero: 1.1002)", {}, False),
    ("(500.0, 0.0)", "(500.0, 0.0)", {}, True),
    ("(499.0, 0.0)", "(500.0, 0.0)", {}, False),
    ("222530 steps, ok", "222,530 steps, ok", {}, True),
    ("PASS (onnx): 1000 steps, max |diff| 3e-7", "PASS (onnx): 1000 steps ...", {}, True),
    ("FAIL (onnx): 1000 steps, max |diff| 3e-7", "PASS (onnx): 1000 steps ...", {}, False),
    ("-101 +/- 24", "−101 +/- 24", {}, True),
    ("nothing", "MSE 0.0035", {"rtol": 0.2}, False),
])
def test_the_output_check_catches_a_wrong_number_or_word(printed, stated, tol, ok):
    assert (compare_output(printed, [stated], **tol) == []) == ok


# ------------------------------------------------------------------------- command lines
def _parsers():
    from agents.cli import build_parser
    from rlstm.export.cli import build_parser as export_parser
    main = build_parser()
    sub = next(a for a in main._actions if a.choices and "train" in a.choices)
    return main, export_parser(), sub.choices


def _commands(text: str):
    """The commands of a shell snippet, each as a list of words (comments dropped)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    command = []
    for word in lexer:
        if word and set(word) <= set(";&|"):
            if command:
                yield command
            command = []
        else:
            command.append(word)
    if command:
        yield command


def check_rlstm_command(argv: list[str]) -> None:
    """Parse ``rlstm ARGV`` as the console script would; an ALGO must be registered and every
    ``--set`` must fit its config field."""
    main, export, _ = _parsers()
    if argv[:1] == ["export"]:
        export.parse_args(argv[1:])
        return
    args = main.parse_args(argv)
    if args.command == "train":
        from agents.cli import load_algorithm, parse_overrides
        parse_overrides(args.set, load_algorithm(args.algo).config_class)


def check_script_command(words: list[str]) -> None:
    """``python examples|benchmarks|docs/X.py --opt ...``: X exists and defines every
    option."""
    script = ROOT / words[1]
    if not script.is_file():
        raise AssertionError(f"no such script: {words[1]}")
    source = script.read_text(encoding="utf-8")
    for module in re.findall(r"^from ((?:rlstm|agents)[\w.]*) import", source, re.MULTILINE):
        source += pathlib.Path(importlib.util.find_spec(module).origin).read_text("utf-8")
    for word in words[2:]:
        for opt in re.findall(r"^\[?(--[\w-]+)", word):
            if f'"{opt}"' not in source and f"'{opt}'" not in source:
                raise AssertionError(f"{words[1]} has no option {opt}")


def _shell_commands(block: Block):
    for k, line in enumerate(block.code.splitlines()):
        for words in _commands(line):
            yield block.line + 1 + k, words


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.id)
def test_command_lines_in_shell_blocks_parse(block):
    for line, words in _shell_commands(block):
        where = f"{block.page}:{line}: {shlex.join(words)}"
        try:
            if words[0] == "rlstm":
                check_rlstm_command(words[1:])
            elif words[0] == "python" and re.match(r"(examples|benchmarks|docs)/", words[1]):
                check_script_command(words)
            else:
                continue
        except SystemExit as e:
            pytest.fail(f"{where}: argparse refuses it (exit {e.code})")
        except Exception as e:
            pytest.fail(f"{where}: {type(e).__name__}: {e}")


@pytest.mark.parametrize("page", list(PARSED))
def test_commands_in_the_prose_exist(page):
    """Inline `rlstm ...` commands use existing subcommands and options; inline `python
    examples/...` (benchmarks/, docs/) commands name existing scripts and their options."""
    text = (ROOT / page).read_text(encoding="utf-8")
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    _, export, subcommands = _parsers()
    problems = []
    for span in re.findall(r"`([^`]+)`", prose):
        words = span.split()
        if len(words) > 1 and words[0] == "python" and re.match(r"(examples|benchmarks|docs)/",
                                                                words[1]):
            try:
                check_script_command(words)
            except AssertionError as e:
                problems.append(f"`{span}`: {e}")
        elif words[:1] == ["rlstm"] and len(words) > 1:
            if words[1] not in subcommands:
                problems.append(f"`{span}`: no subcommand {words[1]!r}")
                continue
            parser = export if words[1] == "export" else subcommands[words[1]]
            for opt in re.findall(r"(?<![\w-])(--[\w-]+)", span):
                if opt not in parser._option_string_actions:
                    problems.append(f"`{span}`: rlstm {words[1]} has no option {opt}")
    assert not problems, f"{page}: " + "\n".join(problems)


# ------------------------------------------------------------------------- config tables
def test_every_config_table_is_generated_and_every_trainer_has_one(load_script):
    """``docs/config_tables.py --check`` (tests/agents/test_config.py) keeps the tables equal to
    the configs; here, every table in the docs is one that script fills, and every registered
    trainer's config is in a table."""
    import agents
    module = load_script("docs/config_tables.py")
    in_docs = {name for p in PAGES
               for name in re.findall(r"<!-- config-table:([\w-]+) -->", p.read_text("utf-8"))}
    assert in_docs == set(module.TABLES)
    tabled = {cls for _, configs in module.TABLES.values() for cls in configs.values()}
    assert {cls.config_class for cls in agents.TRAINERS.values()} <= tabled
