"""Odd version numbers, version names, model names and symbolic links on real directories:
every layer (incoming listing, serving listing, publisher, model config, rollback,
withdrawal, admin validation) applies the same rule (issue 12, items 6-9; issue 24, item 1:
version names read as TF Serving reads them)."""

from __future__ import annotations

import logging
import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sidecar.admin import validation
from sidecar.admin.errors import InvalidRequestError
from sidecar.base.errors import ECHO_LIMIT, echo
from sidecar.config import Address
from sidecar.metrics import BuildInfo, MetricsServer, ScrapeSources, SidecarMetrics
from sidecar.publish import VersionPublisher, roll_back_newest, withdraw_version
from sidecar.publish.source_links import SourceLinkError, check_source_links
from sidecar.tfserving.layout import published_models
from sidecar.tfserving.model_config import render_model_config
from sidecar.tfserving.model_names import is_model_name
from sidecar.tfserving.numbering import MAX_INCOMING_VERSION, MAX_SERVED_VERSION, served_version
from sidecar.watch import IncomingWatcher, WatchEventKind, read_incoming
from sidecar.watch.listing import incoming_version_dir, version_refusal
from tests.metrics.stand import scrape, value
from tests.support.clock import ManualClock
from tests.support.disks import tree_listing
from tests.support.session_run import session_outputs

EPOCH_MICROSECONDS = 1_764_547_200_000_000
"""2025-12-01 as epoch microseconds: 16 digits, served as 19."""


def _version(base: Path, model: str, name: str) -> Path:
    path = base / model / name
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"x")
    return path


# -- item 6: one range --------------------------------------------------------------------


def test_a_nineteen_digit_served_number_is_listed_rolled_back_and_withdrawn(
    tmp_path: Path, tiny_model: Path
) -> None:
    served = served_version(EPOCH_MICROSECONDS)
    assert len(str(served)) == 19
    publisher = VersionPublisher(tmp_path)
    for version in (served_version(7), served, served + 1):
        publisher.publish_copy("clock", version, tiny_model)
    assert publisher.published_versions("clock") == [7000, served, served + 1]
    assert published_models(tmp_path) == ["clock"]
    assert 'name: "clock"' in render_model_config(published_models(tmp_path), tmp_path)

    rolled = roll_back_newest(tmp_path / "clock")
    assert (rolled.version, rolled.now_serving) == (served + 1, served)
    assert withdraw_version(tmp_path / "clock", served)
    assert publisher.published_versions("clock") == [7000]


def test_the_serving_listing_stops_exactly_at_int64(tmp_path: Path) -> None:
    for name in (str(MAX_SERVED_VERSION), str(MAX_SERVED_VERSION + 1), "1" * 20, "0"):
        (tmp_path / "m" / name).mkdir(parents=True)
    assert VersionPublisher(tmp_path).published_versions("m") == [0, MAX_SERVED_VERSION]


def test_incoming_versions_that_cannot_be_served_are_refused_with_the_range(
    tmp_path: Path
) -> None:
    _version(tmp_path, "m", str(EPOCH_MICROSECONDS))
    _version(tmp_path, "m", str(MAX_INCOMING_VERSION))
    _version(tmp_path, "m", "0")
    too_big = [str(MAX_INCOMING_VERSION + 1), str(EPOCH_MICROSECONDS * 1000), "9" * 250]
    for name in too_big:
        _version(tmp_path, "m", name)
    listing = read_incoming(tmp_path)
    assert [v for _, v, _ in listing.versions] == sorted(
        [0, EPOCH_MICROSECONDS, MAX_INCOMING_VERSION])
    refused = {refusal.path.name: refusal.reason for refusal in listing.refused}
    assert sorted(refused) == sorted(too_big)
    for reason in refused.values():
        assert str(MAX_INCOMING_VERSION) in reason and "int64" in reason
        assert len(reason) < 500, "a 250-digit name is not echoed whole"


# -- item 7: one spelling -----------------------------------------------------------------


def test_a_padded_version_name_is_read_as_tf_serving_reads_it_and_keeps_its_name(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Issue 24, item 1: ``absl::SimpleAtoi`` reads ``00000123`` as 123 (TF Serving's own
    test model is laid out so), ``0007`` as 7, ``+5`` as 5; the path keeps the name."""
    padded = _version(tmp_path, "half_plus_two", "00000123")
    seven = _version(tmp_path, "solo", "0007")
    signed = _version(tmp_path, "solo", "+5")
    watcher = IncomingWatcher(tmp_path, settle_seconds=0.0, marker_file=None, clock=clock)
    events = watcher.scan()
    assert [(e.kind, e.model, e.version, e.path) for e in events] == [
        (WatchEventKind.APPEARED, "half_plus_two", 123, padded),
        (WatchEventKind.READY, "half_plus_two", 123, padded),
        (WatchEventKind.APPEARED, "solo", 5, signed),
        (WatchEventKind.READY, "solo", 5, signed),
        (WatchEventKind.APPEARED, "solo", 7, seven),
        (WatchEventKind.READY, "solo", 7, seven),
    ]
    assert watcher.refused() == []
    assert incoming_version_dir(tmp_path, "half_plus_two", 123) == padded
    assert incoming_version_dir(tmp_path, "solo", 7) == seven
    assert incoming_version_dir(tmp_path, "solo", 8) is None
    assert version_refusal(tmp_path, "solo", 7) is None
    # The serving base stays canonical: the sidecar writes 7000, and reads no other spelling.
    for name in ("7000", "0007000", "+7000"):
        (tmp_path / "serving" / "m" / name).mkdir(parents=True)
    assert VersionPublisher(tmp_path / "serving").published_versions("m") == [7000]
    # A rename to another spelling of the same number is the same version, under its new
    # name: nothing vanishes (nothing would be withdrawn), the path follows.
    os.rename(seven, tmp_path / "solo" / "7")
    assert watcher.scan() == []
    assert watcher.refused() == []
    assert incoming_version_dir(tmp_path, "solo", 7) == tmp_path / "solo" / "7"


def test_two_names_for_one_version_are_a_clash_that_names_both_and_tf_servings_choice(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    kept = _version(tmp_path, "both", "7")
    watcher = IncomingWatcher(tmp_path, settle_seconds=0.0, marker_file=None, clock=clock,
                              is_served={"both"}.__contains__)
    assert [(e.kind, e.version) for e in watcher.scan()] == [
        (WatchEventKind.APPEARED, 7), (WatchEventKind.READY, 7)]
    _version(tmp_path, "both", "007")
    with caplog.at_level(logging.ERROR, logger="sidecar.watch"):
        clock.advance(60)
        assert watcher.scan() == [], "a clash is no vanishing: nothing built from 7 leaves"
        watcher.scan()
    assert watcher.faults == ()
    refused = {r.path.name: r.reason for r in watcher.refused()}
    assert set(refused) == {"007", "7"}
    for reason in refused.values():
        assert "'007' and '7' both stand for version 7" in reason
        assert "TF Serving itself would serve '7'" in reason
        assert "Fix: remove or renumber all but one of '007' and '7'" in reason
    assert len(caplog.records) == 2, "each refusal is logged once, not on every rescan"
    assert incoming_version_dir(tmp_path, "both", 7) is None
    clash = version_refusal(tmp_path, "both", 7)
    assert clash is not None and "both stand for version 7" in clash.reason

    shutil.rmtree(tmp_path / "both" / "007")  # the clash resolved: 7 is served again
    assert watcher.scan() == [] and watcher.refused() == []
    assert incoming_version_dir(tmp_path, "both", 7) == kept


# -- item 8: one rule for model names -------------------------------------------------------

ODD_NAMES = ["my model", "café", unicodedata.normalize("NFD", "café"), "résumé-v2", "a" * 129,
             "-lead", "tab\tname"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_model_name_outside_the_rule_is_refused_at_discovery_and_by_every_layer(
    tmp_path: Path, tiny_model: Path, name: str
) -> None:
    _version(tmp_path / "incoming", name, "1")
    listing = read_incoming(tmp_path / "incoming")
    assert listing.versions == ()
    [refusal] = listing.refused
    assert refusal.path == tmp_path / "incoming" / name
    assert "ASCII letters" in refusal.reason and "model directory" in refusal.reason
    assert not is_model_name(name)
    with pytest.raises(InvalidRequestError, match="ASCII letters"):
        validation.model_name(name)
    with pytest.raises(Exception, match="ASCII letters"):
        VersionPublisher(tmp_path / "serving").publish_copy(name, 1000, tiny_model)
    (tmp_path / "serving" / name / "1000").mkdir(parents=True)
    assert published_models(tmp_path / "serving") == []


def test_a_name_that_is_not_utf8_is_refused_without_crashing_the_listing(tmp_path: Path) -> None:
    _version(tmp_path, "ok", "1")
    os.makedirs(os.path.join(os.fsencode(tmp_path), b"caf\xe9", b"1"))
    listing = read_incoming(tmp_path)
    assert [(m, v) for m, v, _ in listing.versions] == [("ok", 1)]
    [refusal] = listing.refused
    assert "\\udce9" in refusal.reason, "quoted with escapes, printable anywhere"


@pytest.mark.parametrize("name", ["resnet", "ResNet-50", "bert_base.v2", "7", "a" * 128])
def test_names_inside_the_rule_pass_every_layer(tmp_path: Path, name: str) -> None:
    _version(tmp_path, name, "1")
    assert [(m, v) for m, v, _ in read_incoming(tmp_path).versions] == [(name, 1)]
    assert validation.model_name(name) == name and is_model_name(name)


def test_an_empty_directory_with_an_odd_name_is_no_model(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "notes dir" / "readme").mkdir(parents=True)
    assert read_incoming(tmp_path).refused == ()


# -- item 9: symbolic links ---------------------------------------------------------------


def _linked_copy(tiny_model: Path, incoming: Path) -> Path:
    """incoming/linked/1: the tiny model made of links (absolute and relative, to files and
    to directories such as variables/) to a shared export elsewhere in the incoming base."""
    shared = incoming / ".shared"
    shutil.copytree(tiny_model, shared)
    version = incoming / "linked" / "1"
    version.mkdir(parents=True)
    for entry in sorted(shared.iterdir()):
        relative = entry.name == "saved_model.pb"
        (version / entry.name).symlink_to(Path("../../.shared") / entry.name if relative
                                          else entry)
    assert (version / "variables").is_symlink()
    return version


def test_links_inside_the_incoming_base_are_published_as_their_content(
    tmp_path: Path, tiny_model: Path
) -> None:
    source = _linked_copy(tiny_model, tmp_path / "incoming")
    published = VersionPublisher(tmp_path / "serving").publish_copy(
        "linked", 1000, source, links_within=tmp_path / "incoming")
    assert tree_listing(published) == tree_listing(tiny_model)
    assert not any(p.is_symlink() for p in published.rglob("*"))
    [outputs] = session_outputs(published, [{"x": np.ones((1, 2), np.float32)}])
    np.testing.assert_allclose(outputs["y"], [[3.0]])


@pytest.mark.parametrize("kind", ["outside file", "outside dir", "dangling", "loop"])
def test_links_the_policy_refuses_stop_publishing_before_anything_is_copied(
    tmp_path: Path, tiny_model: Path, kind: str
) -> None:
    incoming, outside = tmp_path / "incoming", tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("not for the serving base")
    source = _linked_copy(tiny_model, incoming)
    link = {"outside file": source / "variables.txt", "outside dir": source / "extra",
            "dangling": source / "gone", "loop": source / "variables" / "again"}[kind]
    target = {"outside file": outside / "key", "outside dir": outside,
              "dangling": incoming / "nothing", "loop": source}[kind]
    link.symlink_to(target)
    publisher = VersionPublisher(tmp_path / "serving")
    with pytest.raises(SourceLinkError) as caught:
        publisher.publish_copy("linked", 1000, source, links_within=incoming)
    assert {"outside file": "outside the incoming base", "outside dir": "outside the incoming",
            "dangling": "points at nothing", "loop": "contains it"}[kind] in str(caught.value)
    assert link.name in str(caught.value) and "Fix:" in str(caught.value)
    assert publisher.published_versions("linked") == []
    assert os.listdir(tmp_path / "serving" / "linked") == [], "no staging left behind"


def test_linked_model_and_version_directories_are_read_only_inside_the_incoming_base(
    tmp_path: Path
) -> None:
    incoming, elsewhere = tmp_path / "incoming", tmp_path / "elsewhere"
    _version(elsewhere, "exported", "4")
    _version(incoming, "resnet", "1")
    (incoming / "alias").symlink_to(incoming / "resnet")  # inside: the same model twice
    (incoming / "escaped").symlink_to(elsewhere / "exported")
    (incoming / "resnet" / "4").symlink_to(elsewhere / "exported" / "4")
    listing = read_incoming(incoming)
    assert [(m, v) for m, v, _ in listing.versions] == [("alias", 1), ("resnet", 1)]
    refused = {str(r.path.relative_to(incoming)): r.reason for r in listing.refused}
    assert set(refused) == {"escaped", "resnet/4", "alias/4"}
    assert all("symbolic link leading outside the incoming base" in reason
               for reason in refused.values())
    with pytest.raises(SourceLinkError, match="version directory leads outside"):
        check_source_links(incoming / "resnet" / "4", incoming)
    check_source_links(incoming / "alias" / "1", incoming)


# -- error echoes -------------------------------------------------------------------------


def test_echoed_values_are_shortened_and_name_their_length() -> None:
    assert echo("resnet") == "'resnet'"
    long = echo("x" * 10_000)
    assert len(long) < ECHO_LIMIT + 30 and "10002 characters" in long
    error = InvalidRequestError("model", "x" * 10_000, "is not a model name", "use fewer")
    assert len(str(error)) < 300


def test_refused_directories_are_counted_by_kind_on_the_metrics_endpoint(tmp_path: Path) -> None:
    for relative in ["my model/1", "café/2", "m/0007", "m/007", "m/99999999999999999999",
                     "m/3", "m/0004"]:
        (tmp_path / relative).mkdir(parents=True)
    registry = CollectorRegistry()
    SidecarMetrics(registry, BuildInfo("test", "test", "auto"),
                   ScrapeSources(incoming_base=tmp_path))
    server = MetricsServer(Address("127.0.0.1", 0), registry)
    server.start()
    try:
        samples = scrape(server.port)
        shutil.rmtree(tmp_path / "my model")
        after = scrape(server.port)
    finally:
        server.stop()
    assert value(samples, "tftrt_sidecar_incoming_refused", kind="model_name") == 2
    # 0007 and 007 (one clash: each named), the 20-digit one; 0004 is version 4.
    assert value(samples, "tftrt_sidecar_incoming_refused", kind="version_name") == 3
    assert value(after, "tftrt_sidecar_incoming_refused", kind="model_name") == 1
