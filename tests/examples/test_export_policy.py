"""examples/export_policy.py end to end, on a small training budget (fast enough for CI)."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("onnxruntime")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_onnx_and_c_play_exactly_as_predict(tmp_path, load_example):
    res = load_example("export_policy").main(["--timesteps", "2048", "--episodes", "2",
                                              "--out", str(tmp_path)])
    assert res["checks_passed"] and res["identical"]
    r = res["returns"]
    assert r["predict"] == r["onnxruntime"] == r["C"] and len(r["C"]) == 2
    assert all(x >= 1 for x in r["C"])
    assert res["onnx"].is_file() and (tmp_path / "cartpole.h").is_file()
