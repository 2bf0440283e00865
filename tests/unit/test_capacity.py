"""An instance type larger than the machine: CPU capped, memory kept, one line saying so."""

from __future__ import annotations

from emulator.config import INSTANCE_TYPES, InstanceType
from emulator.instances.spec import Capacity, capacity_note, nano_cpus

GIB = 2**30


def test_cpu_above_the_engine_is_capped_and_said() -> None:
    two_cores = Capacity(cpus=2, memory_bytes=24 * GIB)
    itype = INSTANCE_TYPES["standard-4"]
    assert nano_cpus(itype, two_cores) == 2 * 10**9
    note = capacity_note(itype, two_cores)
    assert note is not None
    assert note.startswith("instance type standard-4: 4 vCPU is more than")
    assert "2 CPUs" in note and "memory" not in note.partition("kept")[2]


def test_memory_above_the_engine_is_kept_and_said() -> None:
    small = Capacity(cpus=8, memory_bytes=8 * GIB)
    itype = INSTANCE_TYPES["standard-4"]  # 12 GiB
    assert nano_cpus(itype, small) == 4 * 10**9
    note = capacity_note(itype, small)
    assert note is not None and "12288 MiB memory is more than" in note and "8192 MiB" in note


def test_a_type_that_fits_and_an_unknown_engine_say_nothing() -> None:
    assert capacity_note(INSTANCE_TYPES["standard-2"], Capacity(2, 24 * GIB)) is None
    custom = InstanceType("custom", 3.5, 12288, 2000)
    assert capacity_note(custom, Capacity()) is None
    assert nano_cpus(custom, Capacity()) == 3_500_000_000
