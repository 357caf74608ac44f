"""The shard stream: bytes read once per epoch, disjoint ranks, exact mid-epoch resume, crops drawn
as torchvision draws them, DCT-domain decode close to a full decode; on real photo crops."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cjepa.data.convert import convert_image_folder
from cjepa.data.decode import _draft, crop_boxes, eval_crop, open_image, train_crop
from cjepa.data.stream import ShardSplit, ShardStream, StreamSampler, eval_images
from cjepa.data.transforms import crop_params


def photo_folder(root: Path, classes: int, per_class: int, sides: tuple[int, int] = (40, 90),
                 seed: int = 0) -> Path:
    """JPEG crops (quality 90) of scikit-learn's two sample photos, of mixed sizes and aspect ratios."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"n{c:08d}").mkdir(parents=True)
        for i in range(per_class):
            photo = photos[(c + i) % len(photos)]
            h, w = rng.integers(sides[0], sides[1], size=2)
            top, left = rng.integers(0, photo.shape[0] - h), rng.integers(0, photo.shape[1] - w)
            Image.fromarray(photo[top:top + h, left:left + w]).save(root / f"n{c:08d}" / f"{i:04d}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory) -> Path:
    """30 shards of 50 rows: the read-amplification case of the issue (1500 small JPEGs)."""
    src = photo_folder(tmp_path_factory.mktemp("src") / "photos", classes=10, per_class=150, sides=(12, 20))
    out = tmp_path_factory.mktemp("shards") / "train"
    convert_image_folder(src, out, shard_size=50, image_format="keep")
    return out


def _stream(root: Path, rank: int = 0, world: int = 1, window: int = 2, size: int = 16) -> ShardStream:
    return ShardStream(ShardSplit(str(root)), size, (0.3, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3, seed=3,
                       mask_fn=None, rank=rank, world_size=world, window=window)


def test_an_epoch_reads_each_shard_about_once(many_shards: Path) -> None:
    """2 ranks x 2 loader workers (each with its own cache, as in DataLoader worker processes)
    read every shard of an epoch once, bar those cut by a lane boundary: <= 1.5x the data."""
    reads, seen = 0, []
    for rank in range(2):
        sampler = StreamSampler(ShardSplit(str(many_shards)), 32, seed=3, epochs=1, rank=rank, world_size=2, lanes=2)
        workers = [_stream(many_shards, rank, 2) for _ in range(2)]
        for step, idx in sampler:
            batch = workers[step % 2][(step, idx)]  # the DataLoader's round-robin: worker j gets lane j
            assert batch["images"].shape == (16, 3, 16, 16)
            seen.append(idx)
        reads += sum(w.split.reads for w in workers)
    assert 30 <= reads <= 45
    rows = torch.cat(seen)
    assert rows.unique().numel() == rows.numel() and rows.numel() >= 1500 - 4 * 16  # disjoint, nearly all


def test_the_old_global_permutation_rereads(many_shards: Path) -> None:
    """The contrast the stream exists for: the random-access reader with a 4-shard cache under a
    global permutation re-reads shards many times in a few batches."""
    from cjepa.data.loader import StepBatchSampler
    from cjepa.data.shards import ParquetImages

    data = ParquetImages(many_shards, cache_bytes=4 * 50 * 400, size=(16, 16), preload=False)
    calls = []
    original = data._read_shard
    data._read_shard = lambda i, cols: calls.append(i) or original(i, cols)  # count reads
    sampler = StepBatchSampler(len(data), 32, seed=3)
    for step in range(5):
        data.images[sampler.indices(step)]
    assert len(calls) > 3 * 30  # 5 batches read more than the whole data set 3 times over


def test_mid_epoch_resume_gives_the_same_batches(many_shards: Path) -> None:
    split = ShardSplit(str(many_shards))
    full = list(StreamSampler(split, 32, seed=3, epochs=2, rank=1, world_size=2, lanes=2))
    tail = list(StreamSampler(split, 32, seed=3, start_step=37, epochs=2, rank=1, world_size=2, lanes=2))
    assert [s for s, _ in tail] == [s for s, _ in full][37:]
    ds_a, ds_b = _stream(many_shards, 1, 2), _stream(many_shards, 1, 2)
    for (s, idx), (s2, idx2) in zip(full[37:40], tail[:3]):
        assert s == s2 and torch.equal(idx, idx2)
        assert torch.equal(ds_a[(s, idx)]["images"], ds_b[(s2, idx2)]["images"])
    epochs = [torch.cat([i for s, i in full if s // (len(full) // 2) == e]) for e in range(2)]
    assert not torch.equal(epochs[0], epochs[1])  # a new order every epoch


class _Draws:
    """A numpy-Generator stand-in that replays torch's draws, to compare with transforms.crop_params."""

    def __init__(self, g: torch.Generator) -> None:
        self.g = g

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return torch.rand(*shape, generator=self.g, dtype=torch.float64).numpy()


@pytest.mark.parametrize("size", [(28, 28), (375, 500), (500, 120), (60, 400)])
def test_crop_boxes_are_torchvisions_algorithm(size: tuple[int, int]) -> None:
    h, w = size
    expected = crop_params(64, h, w, (0.3, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(7))
    got = crop_boxes(np.full(64, h), np.full(64, w), (0.3, 1.0), _Draws(torch.Generator().manual_seed(7)))
    assert np.array_equal(got, expected.numpy())


def test_crop_boxes_per_image_sizes_fit() -> None:
    rng = np.random.default_rng(0)
    hs, ws = rng.integers(20, 600, 500), rng.integers(20, 600, 500)
    b = crop_boxes(hs, ws, (0.3, 1.0), rng)
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 0] + b[:, 2] <= hs).all()
    assert (b[:, 1] + b[:, 3] <= ws).all()
    usual = (ws / hs >= 3 / 4) & (ws / hs <= 4 / 3)  # elsewhere the fallback crop clips the aspect ratio
    assert usual.sum() > 50 and (b[usual, 2] * b[usual, 3] >= 0.29 * (hs * ws)[usual]).all()


def _photo_jpeg(h: int, w: int) -> bytes:
    from sklearn.datasets import load_sample_images

    buf = io.BytesIO()
    Image.fromarray(load_sample_images().images[0][:h, :w]).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_dct_domain_decode_is_used_and_close_to_a_full_decode() -> None:
    data = _photo_jpeg(375, 500)
    box = np.array([10, 20, 300, 400])  # (top, left, h, w): shrinks 300 -> 64 px, so 1/4 scale still covers it
    im, scaled = _draft(open_image(data), "RGB", (20, 10, 420, 310), 64)
    assert im.size[0] < 500 and scaled[2] < 420  # libjpeg decodes at a reduced scale
    fast = train_crop(data, box, 64, "RGB").astype(np.float64)
    with Image.open(io.BytesIO(data)) as full_im:  # the same resampler on a full decode: only the draft differs
        full = torch.from_numpy(np.array(full_im.convert("RGB")))[10:310, 20:420].permute(2, 0, 1)[None]
    ref = torch.nn.functional.interpolate(full, size=(64, 64), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
    # of 255; the drafted box is rounded to whole pixels of the 1/4-scale decode (<= 2 source px, ~0.3
    # output px here): a jitter of the random crop, not a loss of detail
    assert fast.shape == (64, 64, 3) and np.abs(fast - ref.numpy()).mean() < 7.0
    with Image.open(io.BytesIO(data)) as full_im:  # and Pillow's own bilinear resize of the full decode
        pil = np.asarray(full_im.convert("RGB").resize((64, 64), Image.BILINEAR, box=(20, 10, 420, 310)))
    assert np.abs(fast - pil).mean() < 8.0


def test_eval_crop_of_a_square_image_is_the_whole_image_resized() -> None:
    data = _photo_jpeg(96, 96)
    with Image.open(io.BytesIO(data)) as im:
        ref = np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR))
    got = eval_crop(data, 32, "RGB", crop_pct=1.0).astype(np.float64)  # decoded at 1/2 scale (48 px >= 32)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 4.0
    assert eval_crop(_photo_jpeg(80, 200), 32, "RGB").shape == (32, 32, 3)


def test_eval_images_are_the_splits_first_rows(many_shards: Path) -> None:
    split = ShardSplit(str(many_shards))
    images, labels = eval_images(split, 120, 16)
    assert images.shape == (120, 3, 16, 16) and images.dtype == torch.uint8
    assert split.reads == 3  # 120 rows of 50-row shards: three shards, each read once
    _, first = split.read(0)
    assert torch.equal(labels[:50], torch.from_numpy(first))


def test_device_decode_matches_the_workers_path(many_shards: Path) -> None:
    """data.decode=device (nvJPEG on a GPU; here torchvision's CPU decoder through the same code)
    draws the same boxes and flips and gives nearly the same pixels as the workers' PIL path."""
    split = ShardSplit(str(many_shards))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    on_workers = ShardStream(split, 24, (0.3, 1.0), mean, std, 3, seed=3, mask_fn=None, hflip=0.5, two_views=True)
    on_device = ShardStream(split, 24, (0.3, 1.0), mean, std, 3, seed=3, mask_fn=None, hflip=0.5, two_views=True,
                            decode="device")
    key = (5, torch.arange(40, 72))
    a = on_workers.finish_on_device(on_workers[key], torch.device("cpu"))
    raw = on_device[key]
    assert "images" not in raw and len(raw["images_jpeg"]) == 32 and raw["images_flips"].any()
    b = on_device.finish_on_device(raw, torch.device("cpu"))
    for view in ("images", "images2"):
        assert a[view].shape == b[view].shape == (32, 3, 24, 24) and a[view].dtype == torch.float32
        assert (a[view] - b[view]).abs().mean() * 0.25 * 255 < 6.0  # mean |diff| in grey levels
    assert torch.equal(a["labels"], b["labels"])


def test_device_decode_refuses_png(tmp_path: Path) -> None:
    from cjepa.data.convert import convert_builtin
    from cjepa.errors import DataError

    convert_builtin("digits", "train", tmp_path / "train")
    with pytest.raises(DataError, match="data.decode=device decodes JPEG"):
        ShardStream(ShardSplit(str(tmp_path / "train")), 8, (0.3, 1.0), 0.5, 0.25, 1, seed=0, mask_fn=None,
                    decode="device")


def test_uris_go_through_the_same_filesystem_layer(many_shards: Path) -> None:
    """A pyarrow URI (file:// here; s3://, gs:// alike) reads the same rows; a URI pyarrow cannot
    open is one DataError naming it."""
    from cjepa.errors import DataError

    by_uri = ShardSplit(f"file://{many_shards}")
    assert by_uri.num_rows == 1500 and by_uri.read(3)[1].tolist() == ShardSplit(str(many_shards)).read(3)[1].tolist()
    with pytest.raises(DataError, match="nope://bucket/x: pyarrow cannot open this URI"):
        ShardSplit("nope://bucket/x")


def test_vicreg_photometric_on_the_stream_is_applied_on_the_device(many_shards: Path) -> None:
    """data.blur / data.solarize on the shard stream: drawn in the worker after the crops (view 1 and
    its crops unchanged), applied in finish_on_device where the batch becomes float."""
    def stream(solarize: tuple[float, float]) -> ShardStream:
        return ShardStream(ShardSplit(str(many_shards)), 16, (0.3, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3,
                           seed=3, mask_fn=None, two_views=True, solarize=solarize)

    key = (4, torch.arange(16))
    plain, vicreg = stream((0.0, 0.0))[key], stream((0.0, 1.0))[key]
    assert torch.equal(plain["images2"], vicreg["images2"]) and "images2_photo" in vicreg  # uint8 crops: the same
    a = stream((0.0, 0.0)).finish_on_device(plain, torch.device("cpu"))
    b = stream((0.0, 1.0)).finish_on_device(vicreg, torch.device("cpu"))
    assert torch.equal(a["images"], b["images"]) and "images2_photo" not in b
    x = a["images2"] * 0.25 + 0.5  # back to [0, 1]
    assert torch.allclose(b["images2"] * 0.25 + 0.5, torch.where(x >= 0.5, 1 - x, x), atol=1e-6)
