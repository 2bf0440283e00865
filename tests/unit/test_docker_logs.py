"""The log stream's frames turned into lines, and the printer's one write per loop turn."""

from __future__ import annotations

import asyncio
import io

import pytest

from emulator.cli_output import Printer
from emulator.docker_logs import Frames


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_frames_give_whole_lines_across_reads_and_streams() -> None:
    data = frame(1, b"one\ntw") + frame(2, b"o\nthree") + frame(1, b"\n")
    frames = Frames()
    got = []
    for i in range(0, len(data), 5):  # reads that cut headers and payloads anywhere
        got += frames.feed(data[i : i + 5])
    assert got == ["one", "two", "three"]


def test_frames_keep_a_partial_frame_and_replace_bad_utf8() -> None:
    frames = Frames()
    whole = frame(1, b"caf\xc3\xa9 \xff\n")
    assert frames.feed(whole[:-3]) == []
    assert frames.feed(whole[-3:]) == ["café \ufffd"]


def test_printer_writes_a_loop_turns_lines_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[str] = []

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    out = Out()
    monkeypatch.setattr("sys.stdout", out)

    async def main() -> None:
        printer = Printer(json_logs=False)
        for i in range(100):
            printer("instance-0", f"line {i}")
        assert writes == []  # nothing yet: written at the end of the loop turn
        await asyncio.sleep(0)
        printer("emu", "later")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert len(writes) == 2
    assert writes[0].count("\n") == 100
    assert writes[0].splitlines()[99].endswith("instance-0       | line 99")
    assert writes[1].endswith(" emu              | later\n")
