"""TF Serving's model config file: parseable, atomic under concurrent reads, idempotent."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from sidecar.base.errors import StorageError
from sidecar.publish import VersionPublisher
from sidecar.tfserving.model_config import ModelConfigWriter
from tests.support.disks import immutable


def parse(path: Path) -> list[tuple[str, str, str]]:
    config = text_format.Parse(
        path.read_text(encoding="utf-8"), model_server_config_pb2.ModelServerConfig()
    )
    return [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]


def test_lists_published_models_and_is_idempotent(tmp_path: Path, tiny_model: Path) -> None:
    serving = tmp_path / "serving"
    publisher = VersionPublisher(serving)
    publisher.publish_copy("resnet", 1, tiny_model)
    publisher.publish_copy("bert", 4, tiny_model)
    (serving / "empty").mkdir()  # no version yet: not listed
    writer = ModelConfigWriter(serving / "models.config", serving)
    assert writer.write(publisher.models()) is True
    assert parse(writer.path) == [
        ("bert", str(serving / "bert"), "tensorflow"),
        ("resnet", str(serving / "resnet"), "tensorflow"),
    ]
    stamp = os.stat(writer.path).st_mtime_ns
    assert writer.write(["resnet", "bert", "resnet"]) is False
    assert os.stat(writer.path).st_mtime_ns == stamp
    assert writer.write([]) is True
    assert parse(writer.path) == []
    assert sorted(os.listdir(serving)) == ["bert", "empty", "models.config", "resnet"]


def test_readers_never_see_a_torn_file(tmp_path: Path) -> None:
    writer = ModelConfigWriter(tmp_path / "models.config", tmp_path / "serving")
    lists = [[f"model{i}" for i in range(n)] for n in (1, 40)]
    expected = [
        [(m, str(tmp_path / "serving" / m), "tensorflow") for m in sorted(ms)] for ms in lists
    ]
    writer.write(lists[0])
    stop = threading.Event()
    seen: list[object] = []

    def read_forever() -> None:
        while not stop.is_set():
            try:
                seen.append(parse(writer.path))
            except Exception as exc:
                seen.append(exc)

    reader = threading.Thread(target=read_forever)
    reader.start()
    for round_number in range(150):
        writer.write(lists[round_number % 2])
    stop.set()
    reader.join()
    assert seen
    assert all(result in expected for result in seen), [r for r in seen if r not in expected][:3]


def test_write_errors_are_clear_and_leave_no_temp_files(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    writer = ModelConfigWriter(directory / "models.config", tmp_path)
    writer.write(["a"])
    with immutable(directory):
        try:
            writer.write(["a", "b"])
        except StorageError as error:
            assert "could not write TF Serving's model config" in str(error)
            assert "Fix:" in str(error)
        else:
            raise AssertionError("writing into an immutable directory succeeded")
    assert os.listdir(directory) == ["models.config"]
    assert [name for name, _, _ in parse(writer.path)] == ["a"]


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    writer = ModelConfigWriter(tmp_path / "models.config", tmp_path)
    (tmp_path / ".models.config.tmp-dead").write_text("half")
    (tmp_path / "keep.txt").write_text("x")
    assert writer.clean_leftovers() == [tmp_path / ".models.config.tmp-dead"]
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
