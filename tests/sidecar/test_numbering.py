"""How incoming versions and their rebuilds map onto TF Serving's version numbers
(sidecar/publish/numbering.py)."""

from __future__ import annotations

import pytest

from sidecar.errors import UserError
from sidecar.publish.numbering import (
    GENERATIONS,
    MAX_INCOMING_VERSION,
    VersionNumberError,
    describe,
    generation,
    incoming_version,
    served_version,
)

INT64_MAX = 2**63 - 1


def test_first_build_and_rebuilds_map_to_consecutive_served_numbers() -> None:
    assert served_version(1) == 1000
    assert served_version(3) == served_version(3, 0) == 3000
    assert [served_version(3, g) for g in (1, 2, 999)] == [3001, 3002, 3999]
    assert served_version(0) == 0


@pytest.mark.parametrize("incoming", [0, 1, 7, 1_732_000_000, MAX_INCOMING_VERSION])
@pytest.mark.parametrize("rebuild", [0, 1, GENERATIONS - 1])
def test_the_incoming_version_and_generation_come_back_from_the_served_number(
    incoming: int, rebuild: int
) -> None:
    served = served_version(incoming, rebuild)
    assert (incoming_version(served), generation(served)) == (incoming, rebuild)


@pytest.mark.parametrize("incoming", [1, 41, 1_732_000_000, MAX_INCOMING_VERSION - 1])
def test_every_rebuild_of_a_version_sorts_below_the_next_incoming_version(incoming: int) -> None:
    builds = [served_version(incoming, g) for g in range(GENERATIONS)]
    assert builds == sorted(builds) and len(set(builds)) == GENERATIONS
    assert max(builds) < served_version(incoming + 1)
    assert min(builds) > served_version(incoming - 1, GENERATIONS - 1)


def test_the_highest_incoming_version_still_fits_int64_with_every_rebuild() -> None:
    assert served_version(MAX_INCOMING_VERSION, GENERATIONS - 1) <= INT64_MAX
    assert (MAX_INCOMING_VERSION + 1) * GENERATIONS + GENERATIONS - 1 > INT64_MAX
    assert MAX_INCOMING_VERSION > 10**15, "epoch microseconds fit"


@pytest.mark.parametrize("incoming", [MAX_INCOMING_VERSION + 1, INT64_MAX, -1])
def test_an_incoming_version_out_of_range_names_the_limit_and_the_fix(incoming: int) -> None:
    with pytest.raises(VersionNumberError) as caught:
        served_version(incoming)
    error = caught.value
    assert isinstance(error, UserError), "a person must land it under another number"
    assert f"incoming version {incoming}" in error.what
    assert str(MAX_INCOMING_VERSION) in error.what and "int64" in error.what
    assert f"from 0 to {MAX_INCOMING_VERSION}" in error.fix
    assert "Fix:" in str(error)


@pytest.mark.parametrize("rebuild", [GENERATIONS, GENERATIONS + 5, -1])
def test_a_generation_out_of_range_says_no_served_number_is_left(rebuild: int) -> None:
    with pytest.raises(VersionNumberError) as caught:
        served_version(4, rebuild)
    error = caught.value
    assert "incoming version 4" in error.what
    assert f"rebuilt {GENERATIONS - 1} times" in error.what
    assert "no served number is left" in error.what
    assert "new incoming version number" in error.fix


def test_describe_names_the_incoming_version_and_the_rebuild() -> None:
    assert describe(3000) == "version 3000 (incoming 3)"
    assert describe(3002) == "version 3002 (incoming 3, rebuild 2)"
    assert describe(served_version(12, 1)) == "version 12001 (incoming 12, rebuild 1)"
