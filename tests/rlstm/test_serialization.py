"""rlstm.serialization: the one file format. Round trips, atomic writes, and refusals.

Whatever a file holds, loading it either returns exactly what was saved or raises ValueError
(FileNotFoundError for a missing path), and never runs anything from the file.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from rlstm import serialization
from rlstm.serialization import HEADER_KEY, VERSION, load_arrays, save_arrays


def _arrays():
    return {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.linspace(0, 1, 5),
            "steps": np.asarray(7, dtype=np.int64), "mask": np.array([True, False]),
            "empty": np.zeros((0, 3)), "bytes": np.arange(4, dtype=np.uint8)}


def _raw_npz(path, header, **arrays):
    """An .npz written by hand, with ``header`` as the raw ``__header__`` entry."""
    np.savez(path, **{HEADER_KEY: header}, **arrays)


class _Trap:
    """Unpickling this creates ``path``: proof that a loader ran code from a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


# --------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path):
    arrays = _arrays()
    meta = {"algo": "PPO", "lr": np.float32(0.5), "sizes": np.arange(3), "nested": {"a": [1, 2]},
            "flag": np.bool_(True), "none": None}
    save_arrays(tmp_path / "m.rlstm", arrays, kind="policy", meta=meta)
    got, header = load_arrays(tmp_path / "m.rlstm", kind="policy")
    assert set(got) == set(arrays)
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape, name
        np.testing.assert_array_equal(got[name], a)
    assert header == {"format": "rlstm", "version": VERSION, "kind": "policy", "algo": "PPO",
                      "lr": 0.5, "sizes": [0, 1, 2], "nested": {"a": [1, 2]}, "flag": True,
                      "none": None}


def test_kind_may_be_one_of_several_or_unchecked(tmp_path):
    save_arrays(tmp_path / "m", {"a": np.ones(1)}, kind="PPO")
    assert load_arrays(tmp_path / "m", kind=("A2C", "PPO"))[1]["kind"] == "PPO"
    assert load_arrays(str(tmp_path / "m"))[1]["kind"] == "PPO"


def test_overwrite_replaces_the_file(tmp_path):
    save_arrays(tmp_path / "m", {"a": np.ones(3)}, kind="k")
    save_arrays(tmp_path / "m", {"b": np.zeros(2)}, kind="k")
    got, _ = load_arrays(tmp_path / "m", kind="k")
    assert list(got) == ["b"]


# --------------------------------------------------------------------------- atomic write
def test_atomic_write_leaves_no_temp_file(tmp_path):
    save_arrays(tmp_path / "sub" / "m.npz", _arrays(), kind="k")
    save_arrays(tmp_path / "sub" / "m.npz", _arrays(), kind="k")
    assert sorted(os.listdir(tmp_path / "sub")) == ["m.npz"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_arrays(path, {"a": np.arange(3.0)}, kind="k")

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(serialization.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_arrays(path, {"a": np.zeros(3)}, kind="k")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(load_arrays(path, kind="k")[0]["a"], np.arange(3.0))


# --------------------------------------------------------------------------- save refusals
@pytest.mark.parametrize("arrays,kind,meta,exc,msg", [
    ({"o": np.array([1, None], dtype=object)}, "k", None, TypeError, "only numeric arrays"),
    ({"s": np.array(["a"])}, "k", None, TypeError, "only numeric arrays"),
    ({"c": np.ones(2, complex)}, "k", None, TypeError, "only numeric arrays"),
    ({HEADER_KEY: np.ones(2)}, "k", None, ValueError, "reserved"),
    ({"a": np.ones(2)}, "", None, ValueError, "kind must be a non-empty string"),
    ({"a": np.ones(2)}, None, None, ValueError, "kind must be a non-empty string"),
    ({"a": np.ones(2)}, "k", {"f": object()}, TypeError, "not JSON-serialisable"),
])
def test_save_refuses(tmp_path, arrays, kind, meta, exc, msg):
    with pytest.raises(exc, match=msg):
        save_arrays(tmp_path / "m", arrays, kind=kind, meta=meta)
    assert os.listdir(tmp_path) == []


def test_meta_cannot_override_the_reserved_header_keys(tmp_path):
    for meta in ({"version": VERSION + 1}, {"kind": "other"}, {"format": "npz"}):
        try:
            save_arrays(tmp_path / "m", {"a": np.ones(2)}, kind="policy", meta=meta)
        except ValueError:
            continue  # refusing is fine
        _, header = load_arrays(tmp_path / "m", kind="policy")
        assert header["format"] == "rlstm" and header["version"] == VERSION


# --------------------------------------------------------------------------- load refusals
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.npz"
    save_arrays(path, _arrays(), kind="policy", meta={"note": "x" * 50})
    return path


def _positions(n):
    """Byte offsets to damage: every 5th, and every one of the last 120 (the zip directory)."""
    return sorted(set(range(0, n, 5)) | set(range(max(0, n - 120), n)))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_arrays(tmp_path / "nope.npz")


def test_every_truncation_is_a_value_error(good_file, tmp_path):
    raw = good_file.read_bytes()
    bad = tmp_path / "cut.npz"
    for n in _positions(len(raw)):
        bad.write_bytes(raw[:n])
        with pytest.raises(ValueError, match="cut.npz"):
            load_arrays(bad)


def test_every_flipped_byte_is_a_value_error_or_loads_exactly(good_file, tmp_path):
    raw = good_file.read_bytes()
    want = _arrays()
    bad = tmp_path / "flip.npz"
    for i in _positions(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            got, header = load_arrays(bad, kind="policy")
        except ValueError:
            continue
        assert set(got) == set(want), i
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"byte {i}")


@pytest.mark.parametrize("header,msg", [
    (np.frombuffer(b"{not json", np.uint8), "corrupt rlstm header"),
    (np.frombuffer(b"\xff\xfe", np.uint8), "corrupt rlstm header"),
    (np.frombuffer(b"[1, 2]", np.uint8), "not an rlstm file"),
    (np.frombuffer(json.dumps({"format": "other", "version": 1, "kind": "policy"}).encode(),
                   np.uint8), "not an rlstm file"),
    (np.frombuffer(json.dumps({"version": 1, "kind": "policy"}).encode(), np.uint8),
     "not an rlstm file"),
    (np.frombuffer(json.dumps({"format": "rlstm", "version": 99, "kind": "policy"}).encode(),
                   np.uint8), "version 99; this rlstm reads version 1"),
    (np.frombuffer(json.dumps({"format": "rlstm", "version": "1", "kind": "policy"}).encode(),
                   np.uint8), "version"),
    (np.frombuffer(json.dumps({"format": "rlstm", "version": 1}).encode(), np.uint8),
     "holds a None"),
    (np.array([1.0, 2.0]), "corrupt rlstm header"),
    (np.zeros((2, 2), np.uint8), "corrupt rlstm header"),
])
def test_tampered_header_is_a_value_error(tmp_path, header, msg):
    _raw_npz(tmp_path / "t.npz", header, a=np.ones(2))
    with pytest.raises(ValueError, match=msg):
        load_arrays(tmp_path / "t.npz", kind="policy")


def test_wrong_kind(good_file):
    with pytest.raises(ValueError, match=r"holds a 'policy', expected one of \('PPO',\)"):
        load_arrays(good_file, kind="PPO")
    with pytest.raises(ValueError, match="expected one of"):
        load_arrays(good_file, kind=("A2C", "GA"))


def test_npz_without_header(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not an rlstm file"):
        load_arrays(tmp_path / "plain.npz")


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"PK\x03\x04", b"\x93NUMPY",
                                     b"\x00" * 100, os.urandom(64)])
def test_files_that_are_not_npz(tmp_path, content):
    (tmp_path / "f.bin").write_bytes(content)
    with pytest.raises(ValueError):
        load_arrays(tmp_path / "f.bin")


def test_a_zip_that_is_not_an_npz(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not an rlstm file"):
        load_arrays(tmp_path / "z.npz")


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("member", [HEADER_KEY + ".npy", "w.npy"])
def test_a_zip_whose_members_are_not_npy(tmp_path, member):
    header = np.frombuffer(json.dumps({"format": "rlstm", "version": VERSION,
                                       "kind": "k"}).encode(), np.uint8)
    np.savez(tmp_path / "z.npz", **{HEADER_KEY: header, "w": np.ones(2)})
    with zipfile.ZipFile(tmp_path / "z.npz", "a") as z:
        z.writestr(member, b"not an npy")  # a second member of that name wins on reading
    with pytest.raises(ValueError):
        load_arrays(tmp_path / "z.npz", kind="k")


def test_a_plain_npy_file(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(ValueError):
        load_arrays(tmp_path / "a.npy")



def test_a_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    for name, payload in [("p.pkl", pickle.dumps(_Trap(marker))),
                          ("p.npz", pickle.dumps({"a": _Trap(marker)}, protocol=2))]:
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError):
            load_arrays(tmp_path / name)
        assert not marker.exists()


def test_object_arrays_in_an_npz_are_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    header = np.frombuffer(json.dumps({"format": "rlstm", "version": VERSION,
                                       "kind": "k"}).encode(), np.uint8)
    evil = np.empty(1, dtype=object)
    evil[0] = _Trap(marker)
    buf = io.BytesIO()
    np.savez(buf, **{HEADER_KEY: header}, w=np.ones(2), evil=evil)
    (tmp_path / "evil.npz").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="evil.npz"):
        load_arrays(tmp_path / "evil.npz", kind="k")
    assert not marker.exists()
    # and an object header
    _raw_npz(tmp_path / "evil2.npz", evil, w=np.ones(2))
    with pytest.raises(ValueError):
        load_arrays(tmp_path / "evil2.npz", kind="k")
    assert not marker.exists()
