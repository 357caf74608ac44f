"""``cjepa data convert --ray``: the import's shards as Ray tasks write exactly what local processes
write, and a corrupt file is still named in one line (the task's DataError, not a Ray traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from cjepa.data.convert import convert
from cjepa.distributed.convert_ray import ray_execute
from cjepa.errors import DataError
from tests.data.test_stream import photo_folder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():
        ray.init(num_cpus=4)  # as every Ray test module: later modules reuse this cluster and count on 4 CPUs
    yield


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    photo_folder(root / "train", classes=4, per_class=12)
    photo_folder(root / "val", classes=4, per_class=3, seed=1)
    return root


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_ray_tasks_write_what_local_processes_write(tree: Path, ray_local, tmp_path: Path) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    convert(str(tree), local, shard_size=8, image_format="jpeg", resize=48, workers=1)
    manifests = convert(str(tree), on_ray, shard_size=8, image_format="jpeg", resize=48, execute=ray_execute())
    assert set(manifests) == {"train", "val"} and manifests["train"].total == 48
    assert len(manifests["train"].shards) == 6 and not (on_ray / "train" / ".convert").exists()
    assert _files(local) == _files(on_ray)  # the same bytes, shard by shard, manifests included
    assert json.loads((on_ray / "val" / "classes.json").read_text()) == \
        json.loads((on_ray / "train" / "classes.json").read_text())


def test_a_corrupt_file_is_named_through_ray(tree: Path, ray_local, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    photo_folder(bad / "train", classes=2, per_class=4)
    victim = sorted((bad / "train").rglob("*.JPEG"))[3]
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=victim.name):
        convert(str(bad), tmp_path / "out", shard_size=4, image_format="keep", execute=ray_execute())
