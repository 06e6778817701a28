"""How much linear memory a compiled policy's data needs before it can start.

``opa build -t wasm`` sizes the module's memory import from its data but can come up a few bytes
short: a pack whose data ended just past a page boundary declared one page too few, and copying
its data segments in at instantiation trapped ("out of bounds memory access"). The engine reads
where the last active data segment ends and gives the memory at least that much.
"""

from __future__ import annotations

_DATA_SECTION = 11
_I32_CONST = 0x41
_END = 0x0B
_HEADER = b"\0asm\x01\0\0\0"


class _Truncated(Exception):
    """The bytes end inside a section or a number."""


def data_end(wasm: bytes) -> int:
    """The byte offset just past the module's last active data segment (0 without any).

    Only what OPA emits is read exactly: active segments of memory 0 placed by an ``i32.const``.
    A module that places one otherwise (or is not a wasm binary) gives 0, and wasmtime reports
    whatever is wrong with it when it is instantiated.
    """
    if not wasm.startswith(_HEADER):
        return 0
    try:
        return _data_section_end(wasm)
    except (_Truncated, IndexError, ValueError):
        return 0


def _data_section_end(wasm: bytes) -> int:
    offset = len(_HEADER)
    while offset < len(wasm):
        section = wasm[offset]
        size, offset = _unsigned(wasm, offset + 1)
        if section == _DATA_SECTION:
            return _segments_end(wasm, offset, offset + size)
        offset += size
    return 0


def _segments_end(wasm: bytes, offset: int, section_end: int) -> int:
    count, offset = _unsigned(wasm, offset)
    end = 0
    for _ in range(count):
        flags, offset = _unsigned(wasm, offset)
        if flags == 2:  # active, with an explicit memory index
            memory, offset = _unsigned(wasm, offset)
            if memory != 0:
                raise ValueError("a data segment for another memory")
        start: int | None = None
        if flags in (0, 2):
            if wasm[offset] != _I32_CONST:
                raise ValueError("a data segment placed by something other than i32.const")
            start, offset = _signed(wasm, offset + 1)
            if wasm[offset] != _END:
                raise ValueError("a data segment offset longer than one instruction")
            offset += 1
        elif flags != 1:  # 1: passive, copied only when the code asks
            raise ValueError(f"unknown data segment kind {flags}")
        length, offset = _unsigned(wasm, offset)
        offset += length
        if offset > section_end:
            raise _Truncated
        if start is not None:
            end = max(end, start + length)
    return end


def _unsigned(wasm: bytes, offset: int) -> tuple[int, int]:
    """A LEB128 unsigned number at ``offset``, and the offset after it."""
    return _leb128(wasm, offset, signed=False)


def _signed(wasm: bytes, offset: int) -> tuple[int, int]:
    return _leb128(wasm, offset, signed=True)


def _leb128(wasm: bytes, offset: int, *, signed: bool) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(wasm) or shift > 35:  # 32-bit numbers take at most five bytes
            raise _Truncated
        byte = wasm[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if signed and byte & 0x40:
                value -= 1 << shift
            return value, offset
