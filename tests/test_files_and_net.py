"""The one atomic-write helper (churn/files.py) and the one free-port helper (churn/net.py)."""

from __future__ import annotations

import json
import socket

import pytest

from churn.files import atomic_path, atomic_write_bytes, atomic_write_json
from churn.net import free_port


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"version": "1"})
    atomic_write_json(target, {"version": "2"})
    assert json.loads(target.read_text()) == {"version": "2"}
    atomic_write_bytes(tmp_path / "raw.bin", b"\x00\x01")
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.bin", "state.json"]


def test_a_failed_write_keeps_the_old_content_and_removes_its_temp_file(tmp_path):
    target = tmp_path / "current.json"
    atomic_write_json(target, {"version": "1"})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"version": object()})  # not JSON: fails before anything is written
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(target) as tmp:
        tmp.write_text('{"version": "2", "trunc')
        raise RuntimeError("writer died")
    assert json.loads(target.read_text()) == {"version": "1"}
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"]


def test_temp_names_are_unique_and_hidden_beside_the_target(tmp_path):
    target = tmp_path / "data.parquet"
    names = set()
    for _ in range(3):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
            names.add(tmp.name)
            tmp.write_bytes(b"x")
    assert len(names) == 3 and list(tmp_path.glob("*.parquet")) == [target]


def test_free_port_can_be_bound_on_loopback():
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert server.getsockname() == ("127.0.0.1", port)
