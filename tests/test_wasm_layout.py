"""Where a wasm module's data ends: read from its data section, for sizing the engine's memory."""

from __future__ import annotations

import pytest
import wasmtime

from gatekeeper.policy.wasm_layout import data_end


def module(body: str) -> bytes:
    return bytes(wasmtime.wat2wasm(f'(module (import "env" "memory" (memory 1)) {body})'))


def test_the_end_of_the_furthest_active_segment():
    wasm = module('(data (i32.const 65530) "0123456789") (data (i32.const 16) "ab")')
    assert data_end(wasm) == 65540


def test_passive_segments_take_no_place_until_copied():
    assert data_end(module('(data "0123456789") (data (i32.const 100) "x")')) == 101


def test_a_segment_naming_its_memory_is_read_too():
    assert data_end(module('(data (memory 0) (i32.const 70000) "abc")')) == 70003


def test_a_module_without_data_needs_none():
    assert data_end(module("")) == 0


@pytest.mark.parametrize(
    "wasm",
    [b"", b"not wasm at all", b"\0asm\x01\0\0\0\x0b\x05\x01", b"\0asm\x01\0\0\0\x0b\xff\xff\xff\xff\xff\xff"],
    ids=["empty", "not-wasm", "truncated-section", "endless-number"],
)
def test_bytes_that_are_not_a_whole_module_give_nothing(wasm):
    assert data_end(wasm) == 0


def test_a_segment_placed_by_a_global_is_not_guessed():
    wasm = bytes(
        wasmtime.wat2wasm(
            '(module (import "env" "memory" (memory 1)) (import "env" "base" (global i32))'
            ' (data (global.get 0) "abc"))'
        )
    )
    assert data_end(wasm) == 0
