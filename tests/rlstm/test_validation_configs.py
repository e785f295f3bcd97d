"""rlstm.validation's typed configs: check_value/check_config by annotation, Range, parse_value
for command-line strings, describe_type, unknown_keys_error and field_docs."""
from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import pytest

from rlstm.validation import (Range, check_config, check_value, config_hints, describe_type,
                               field_docs, parse_value, unknown_keys_error)

AtLeast1 = Annotated[int, Range(1)]
Unit = Annotated[float, Range(0, 1, low_open=True)]
Positive = Annotated[float, Range(0, low_open=True)]


@dataclass
class Cfg:
    """A config of every kind of field."""

    flag: bool = True
    """A switch."""
    n: AtLeast1 = 4
    """How many,
    over two lines."""
    rate: Unit = 0.5
    mode: Literal["constant", "linear"] = "linear"
    """The schedule."""
    sizes: tuple[AtLeast1, ...] = ()
    limit: Positive | None = None
    path: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class SubCfg(Cfg):
    flag: bool = False
    """The subclass's switch."""
    more: int = 0
    """One more."""


@dataclass(frozen=True)
class FrozenCfg:
    n: int = 1
    ratio: float = 0.5


HINTS = config_hints(Cfg)  # the resolved annotations, Annotated kept


def check(field_name, value):
    return check_value(f"Cfg.{field_name}", value, HINTS[field_name])


# ---------------------------------------------------------------------------- check_value
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
def test_bool_fields_take_bools_and_return_python_bools(value):
    out = check("flag", value)
    assert type(out) is bool and out == bool(value)


@pytest.mark.parametrize("value", ["False", "true", 0, 1, None, np.int64(1), 1.0, [True]])
def test_bool_fields_refuse_everything_else(value):
    with pytest.raises(TypeError, match=r"^Cfg\.flag must be a bool \(True or False\), got "):
        check("flag", value)


@pytest.mark.parametrize("value,expected", [(3, 3), (np.int32(3), 3), (np.uint8(200), 200)])
def test_int_fields_take_integers_as_python_ints(value, expected):
    out = check("n", value)
    assert type(out) is int and out == expected


@pytest.mark.parametrize("value,exc", [(3.0, TypeError), (True, TypeError),
                                       (np.bool_(True), TypeError), ("3", TypeError),
                                       (None, TypeError), (0, ValueError),
                                       (np.int64(-2), ValueError)])
def test_int_fields_refuse_non_integers_and_out_of_range(value, exc):
    with pytest.raises(exc, match=r"^Cfg\.n must be an int >= 1, got "):
        check("n", value)


@pytest.mark.parametrize("value,expected", [(1, 1.0), (np.float32(0.25), 0.25),
                                            (np.int64(1), 1.0), (np.float64(1e-300), 1e-300)])
def test_number_fields_take_real_numbers_as_python_floats(value, expected):
    out = check("rate", value)
    assert type(out) is float and out == expected


@pytest.mark.parametrize("value,exc", [
    ("0.5", TypeError), (None, TypeError), (True, TypeError), (np.bool_(False), TypeError),
    (float("nan"), ValueError), (float("inf"), ValueError), (np.float32("nan"), ValueError),
    (-np.inf, ValueError), (0.0, ValueError), (1.0000001, ValueError), ([0.5], TypeError),
])
def test_number_fields_refuse_strings_none_nan_inf_and_out_of_range(value, exc):
    with pytest.raises(exc, match=r"^Cfg\.rate must be a number in \(0, 1\], got "):
        check("rate", value)


@pytest.mark.parametrize("rng,inside,outside,text", [
    (Range(0, 1), [0, 0.5, 1], [-1e-9, 1 + 1e-9], "in [0, 1]"),
    (Range(0, 1, low_open=True), [1e-12, 1], [0, 1.5], "in (0, 1]"),
    (Range(0, 1, high_open=True), [0, 0.999], [1, -0.1], "in [0, 1)"),
    (Range(0, 1, True, True), [0.5], [0, 1], "in (0, 1)"),
    (Range(1), [1, 10 ** 9], [0, 0.999], ">= 1"),
    (Range(0, low_open=True), [1e-300], [0, -1], "> 0"),
    (Range(high=5), [5, -10 ** 9], [5.001], "<= 5"),
    (Range(high=5, high_open=True), [4.999], [5], "< 5"),
])
def test_range_boundaries(rng, inside, outside, text):
    assert rng.describe() == text
    assert all(rng.contains(v) for v in inside)
    assert not any(rng.contains(v) for v in outside)
    hint = Annotated[float, rng]
    for v in outside:
        with pytest.raises(ValueError, match=rf"^x must be a number {re.escape(text)}, got"):
            check_value("x", v, hint)


def test_literal_choices_suggest_the_nearest():
    assert check("mode", "linear") == "linear"
    with pytest.raises(ValueError, match=r"^Cfg\.mode must be one of 'constant', 'linear', got "
                                         r"'lienar' \(did you mean 'linear'\?\)$"):
        check("mode", "lienar")
    with pytest.raises(ValueError) as e:
        check("mode", "xyz")
    assert "did you mean" not in str(e.value)
    for bad in (None, 1, ["linear"]):
        with pytest.raises(ValueError, match=r"^Cfg\.mode must be one of"):
            check("mode", bad)


def test_literal_of_ints_takes_its_ints():
    assert check_value("k", 1, Literal[1, 2]) == 1


@pytest.mark.parametrize("value,expected", [
    ([64, 64], (64, 64)), ((64,), (64,)), (64, (64,)), (np.int64(64), (64,)),
    (np.array([1, 2]), (1, 2)), ([], ()), ([np.int32(3)], (3,)),
])
def test_list_fields_accept_lists_tuples_arrays_and_a_single_int(value, expected):
    out = check("sizes", value)
    assert type(out) is tuple and out == expected and all(type(v) is int for v in out)


@pytest.mark.parametrize("value,exc,match", [
    ("64", TypeError, r"^Cfg\.sizes must be a list of "),
    (True, TypeError, r"^Cfg\.sizes must be a list of "),
    (None, TypeError, r"^Cfg\.sizes must be a list of "),
    ([64, 0], ValueError, r"^Cfg\.sizes\[1\] must be an int >= 1, got 0"),
    ([64, "a"], TypeError, r"^Cfg\.sizes\[1\] must be an int >= 1, got 'a'"),
    ([[64]], TypeError, r"^Cfg\.sizes\[0\] must be an int"),
])
def test_list_fields_refuse_and_name_the_element(value, exc, match):
    with pytest.raises(exc, match=match):
        check("sizes", value)


def test_a_list_of_strings_is_not_split_into_characters():
    assert check_value("s", ["ab"], tuple[str, ...]) == ("ab",)
    with pytest.raises(TypeError, match="^s must be a list of"):
        check_value("s", "abc", tuple[str, ...])


def test_optional_fields():
    assert check("limit", None) is None and check("path", None) is None
    assert check("limit", np.float32(2.5)) == 2.5
    with pytest.raises(ValueError, match=r"^Cfg\.limit must be a number > 0 or None, got -1"):
        check("limit", -1)
    with pytest.raises(TypeError, match=r"^Cfg\.limit must be a number > 0 or None, got 'x'"):
        check("limit", "x")
    with pytest.raises(TypeError, match=r"^Cfg\.n must be an int >= 1, got None"):
        check("n", None)
    out = check("path", pathlib.Path("runs") / "a")
    assert type(out) is str and out == str(pathlib.Path("runs") / "a")


def test_dict_fields_are_copied_and_only_dicts_accepted():
    d = {"log_std_init": -1}
    out = check("extra", d)
    assert out == d and out is not d
    for bad in ([("a", 1)], "{}", None):
        with pytest.raises(TypeError, match=r"^Cfg\.extra must be a dict, got "):
            check("extra", bad)


def test_an_unsupported_annotation_is_a_bug_in_the_config_class():
    with pytest.raises(TypeError, match="x: unsupported annotation"):
        check_value("x", 1, set)


# ---------------------------------------------------------------------------- check_config
def test_check_config_normalises_every_field_in_place():
    cfg = Cfg(flag=np.bool_(False), n=np.int64(3), rate=np.float32(0.25), sizes=[8, np.int64(8)],
              limit=np.int32(2), path=pathlib.Path("x"))
    check_config(cfg)
    assert cfg == Cfg(flag=False, n=3, rate=0.25, sizes=(8, 8), limit=2.0, path="x")
    assert type(cfg.flag) is bool and type(cfg.n) is int and type(cfg.rate) is float
    assert type(cfg.sizes) is tuple and type(cfg.limit) is float
    frozen = FrozenCfg(n=np.int64(2), ratio=1)
    check_config(frozen)
    assert type(frozen.n) is int and type(frozen.ratio) is float


@pytest.mark.parametrize("cfg,exc,match", [
    (Cfg(flag="False"), TypeError, r"^Cfg\.flag must be a bool"),
    (SubCfg(more=1.5), TypeError, r"^SubCfg\.more must be an int"),
    (Cfg(sizes=[4, -1]), ValueError, r"^Cfg\.sizes\[1\] must be an int >= 1"),
])
def test_check_config_names_the_class_and_field(cfg, exc, match):
    with pytest.raises(exc, match=match):
        check_config(cfg)


# ---------------------------------------------------------------------------- describe_type
@pytest.mark.parametrize("hint,text", [
    (bool, "a bool (True or False)"), (int, "an int"), (float, "a number"), (str, "a string"),
    (dict, "a dict"), (AtLeast1, "an int >= 1"), (Unit, "a number in (0, 1]"),
    (Literal["a", "b"], "one of 'a', 'b'"), (Positive | None, "a number > 0 or None"),
    (str | None, "a string or None"),
])
def test_describe_type(hint, text):
    assert describe_type(hint) == text


@pytest.mark.parametrize("hint,text", [
    (tuple[int, ...], "a list of ints"), (tuple[AtLeast1, ...], "a list of ints >= 1"),
    (tuple[Unit, ...], "a list of numbers in (0, 1]"), (tuple[str, ...], "a list of strings"),
    (tuple[bool, ...] | None, "a list of bools or None"),
])
def test_describe_type_of_a_list_reads_as_english(hint, text):
    assert describe_type(hint) == text


# ---------------------------------------------------------------------------- parse_value
def parse(field_name, text):
    return parse_value(f"Cfg.{field_name}", text, HINTS[field_name])


@pytest.mark.parametrize("text,expected", [("true", True), ("True", True), ("1", True),
                                           ("false", False), ("False", False), ("0", False),
                                           (" true ", True)])
def test_parse_bool_takes_exactly_six_spellings(text, expected):
    assert parse("flag", text) is expected


@pytest.mark.parametrize("text", ["TRUE", "yes", "no", "on", "2", "", "t", "none"])
def test_parse_bool_refuses_other_spellings_with_the_list(text):
    with pytest.raises(ValueError, match=r"^Cfg\.flag must be a bool \(True or False\), got "
                                         r".* \(use true/false/True/False/1/0\)$"):
        parse("flag", text)


@pytest.mark.parametrize("text", ["none", "null", "None", "NULL", " none "])
def test_parse_none_for_optional_fields_only(text):
    assert parse("limit", text) is None and parse("path", text) is None
    with pytest.raises(ValueError, match=r"^Cfg\.n must be an int >= 1, got "):
        parse("n", text)


@pytest.mark.parametrize("text,expected", [("[64, 64]", (64, 64)), ("64,64", (64, 64)),
                                           ("64, 64", (64, 64)), ("64", (64,)),
                                           ("[64]", (64,)), ("[]", ()), ("", ())])
def test_parse_lists(text, expected):
    assert parse("sizes", text) == expected


@pytest.mark.parametrize("field_name,text,expected", [
    ("n", "3", 3), ("n", " 12 ", 12), ("rate", "1e-3", 1e-3), ("rate", "1", 1.0),
    ("limit", "2.5", 2.5), ("mode", "constant", "constant"), ("path", "runs/a", "runs/a"),
    ("extra", '{"log_std_init": -1, "core": "gru"}', {"log_std_init": -1, "core": "gru"}),
])
def test_parse_typed_values(field_name, text, expected):
    out = parse(field_name, text)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("field_name,text,match", [
    ("n", "3.0", r"^Cfg\.n must be an int >= 1, got '3.0'"),
    ("n", "0", r"^Cfg\.n must be an int >= 1, got 0"),
    ("n", "three", r"^Cfg\.n must be an int >= 1, got 'three'"),
    ("rate", "nan", r"^Cfg\.rate must be a number in \(0, 1\], got 'nan'"),
    ("rate", "inf", r"^Cfg\.rate must be a number"),
    ("rate", "1.5", r"^Cfg\.rate must be a number in \(0, 1\], got 1.5"),
    ("limit", "-2", r"^Cfg\.limit must be a number > 0 or None, got '-2'"),
    ("mode", "lienar", r"^Cfg\.mode must be one of .*\(did you mean 'linear'\?\)"),
    ("sizes", "[64, ", r"^Cfg\.sizes must be a list of"),
    ("sizes", "64,x", r"^Cfg\.sizes\[1\] must be an int >= 1, got 'x'"),
    ("sizes", "[64, 0]", r"^Cfg\.sizes\[1\] must be an int >= 1, got 0"),
    ("extra", "log_std_init=-1",
     r"^Cfg\.extra must be a dict, got 'log_std_init=-1' \(a JSON object"),
])
def test_parse_errors_are_value_errors_that_name_the_field(field_name, text, match):
    with pytest.raises(ValueError, match=match):
        parse(field_name, text)


@pytest.mark.parametrize("field_name,text", [("extra", "[1]"), ("sizes", '["a"]'),
                                             ("sizes", "[1.5]")])
def test_parse_json_of_the_wrong_type_is_a_value_error(field_name, text):
    with pytest.raises(ValueError, match=rf"^Cfg\.{field_name}"):
        parse(field_name, text)


# ---------------------------------------------------------------------------- errors and docs
def test_unknown_keys_error_lists_valid_names_and_suggests_the_nearest():
    err = unknown_keys_error("PPOConfig", {"n_env", "zzz"}, ["n_envs", "n_steps", "gamma"])
    assert isinstance(err, TypeError)
    assert str(err) == ("unknown PPOConfig settings 'n_env' (did you mean 'n_envs'?), 'zzz'; "
                        "valid ones are: gamma, n_envs, n_steps")


def test_field_docs_reads_attribute_docstrings_and_subclasses_win():
    assert field_docs(Cfg) == {"flag": "A switch.", "n": "How many, over two lines.",
                               "mode": "The schedule."}
    assert field_docs(SubCfg) == {"flag": "The subclass's switch.",
                                  "n": "How many, over two lines.", "mode": "The schedule.",
                                  "more": "One more."}
    assert field_docs(FrozenCfg) == {}
