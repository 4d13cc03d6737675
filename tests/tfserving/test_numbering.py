"""How incoming versions and their rebuilds map onto TF Serving's version numbers
(sidecar/tfserving/numbering.py)."""

from __future__ import annotations

import pytest

from sidecar.base.errors import UserError
from sidecar.tfserving.numbering import (
    GENERATIONS,
    MAX_INCOMING_VERSION,
    VersionNumberError,
    clash_error,
    describe,
    generation,
    incoming_version,
    incoming_version_from_name,
    is_version_name,
    served_version,
    served_version_from_name,
    tf_serving_choice,
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


@pytest.mark.parametrize(("name", "number"), [
    ("7", 7), ("0007", 7), ("00000123", 123), ("0", 0), ("000", 0), ("+7", 7), (" 7", 7),
    ("7\n", 7), ("-0", 0), (str(MAX_INCOMING_VERSION), MAX_INCOMING_VERSION),
])
def test_an_incoming_version_name_is_read_as_absl_simple_atoi_reads_it(
    name: str, number: int
) -> None:
    """TF Serving's ParseVersionNumber is absl::SimpleAtoi (base 10: ASCII whitespace
    around an optional sign and ASCII digits)."""
    assert is_version_name(name)
    assert incoming_version_from_name(name) == number


@pytest.mark.parametrize("name", ["abc", "", " ", "+", "7a", "0x7", "1e3", "7.0", "١٢", "7 7"])
def test_names_absl_does_not_read_as_a_number_are_no_version(name: str) -> None:
    assert not is_version_name(name)
    with pytest.raises(VersionNumberError, match="is not a version number"):
        incoming_version_from_name(name)


@pytest.mark.parametrize("name", ["-3", "0" * 30 + "9" * 20, str(MAX_INCOMING_VERSION + 1)])
def test_a_version_name_outside_the_range_is_refused_with_the_range(name: str) -> None:
    with pytest.raises(VersionNumberError, match=str(MAX_INCOMING_VERSION)):
        incoming_version_from_name(name)


def test_the_serving_base_reads_only_the_one_spelling_the_sidecar_writes() -> None:
    assert [served_version_from_name(n) for n in ("7000", "0", "07000", "+7000", " 7000")] == [
        7000, 0, None, None, None]


def test_tf_serving_serves_the_name_that_sorts_last_of_a_clash() -> None:
    """IndexChildrenByVersion walks a std::set of the names (bytewise order); for one
    number, the later name replaces the earlier one."""
    assert tf_serving_choice(["7", "007"]) == "7"
    assert tf_serving_choice(["0007", "007", "+7"]) == "007"
    error = clash_error(["7", "007"], 7)
    assert error.what.startswith("version directories '007' and '7' both stand for version 7")
    assert "TF Serving itself would serve '7'" in error.what
    assert error.fix == "remove or renumber all but one of '007' and '7'"
