"""The log stream's frames and the json-file log's records turned into lines, a log file
followed as it grows and rotates, and the printer's one write per loop turn."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.cli.output import Printer
from emulator.engine import docker_logs
from emulator.engine.docker_logs import Frames, JsonFileLines


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


def record(text: str, stream: str = "stdout") -> bytes:
    entry = {"log": text, "stream": stream, "time": "2026-12-01T07:00:00.123456789Z"}
    return json.dumps(entry).encode() + b"\n"


def test_json_file_records_give_whole_lines_across_reads() -> None:
    # A line longer than the engine's buffer comes in records without a newline but the last.
    data = record("one\n") + record("a long li", "stderr") + record("ne\n") + record("café\n")
    lines = JsonFileLines()
    got = []
    for i in range(0, len(data), 7):  # reads that cut records anywhere
        got += lines.feed(data[i : i + 7])
    assert got == ["one", "a long line", "café"]
    assert lines.feed(b"not json\n" + record("after\n")) == ["after"]


def test_log_files_only_for_a_json_file_engine_whose_folder_can_be_read(tmp_path: Path) -> None:
    (tmp_path / "containers").mkdir()
    assert docker_logs.log_files_dir(str(tmp_path), "json-file") == str(tmp_path / "containers")
    assert docker_logs.log_files_dir(str(tmp_path), "local") == ""
    assert docker_logs.log_files_dir(str(tmp_path / "nowhere"), "json-file") == ""
    assert docker_logs.log_files_dir("", "json-file") == ""


async def test_a_log_file_is_followed_as_it_grows_and_into_its_rotation(tmp_path: Path) -> None:
    cid = "c0ffee"
    folder = tmp_path / cid
    folder.mkdir()
    log = folder / f"{cid}-json.log"
    log.write_bytes(record("before\n"))
    got: list[str] = []

    def never() -> docker_logs.ByteStream:
        raise AssertionError("the engine's stream was opened instead of the file")

    stop = docker_logs.follow(cid, got.append, never, log_files=str(tmp_path))
    try:
        await async_wait(lambda: got == ["before"])
        with log.open("ab") as f:
            f.write(record("grown\n"))
        await async_wait(lambda: got == ["before", "grown"])
        os.rename(log, str(log) + ".1")  # as the engine rotates at max-size
        log.write_bytes(record("rotated\n"))
        await async_wait(lambda: got == ["before", "grown", "rotated"])
        log.unlink()  # the container removed: the follower ends by itself
        await async_wait(lambda: not [t for t in asyncio.all_tasks() if cid in t.get_name()])
    finally:
        stop()


async def async_wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the lines did not come"
        await asyncio.sleep(0.01)
