"""Tests for efficientnet_search.data.splits: every source URI, the splits, and the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search import data
from efficientnet_search.data import synthetic as data_synthetic
from efficientnet_search.data.sources import FASHION_MNIST_DIR
from tests.paths import SHARED_DATA

SHARED_NPZ = SHARED_DATA / "pneumoniamnist_balanced.npz"


def _arrays(n, *, num_classes=3, size=16, channels=1, multi_label=False, seed=0):
    return data_synthetic.synthetic_arrays(
        n, num_classes=num_classes, image_size=size, channels=channels,
        multi_label=multi_label, seed=seed,
    )  # fmt: skip


def _labels(ds):
    return np.asarray([y for _, y in ds.as_numpy_iterator()])


def _images(ds):
    return [x for x, _ in ds.as_numpy_iterator()]


# ----------------------------------------------------------------------------- sources


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST missing: apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_from_debian_files_with_stratified_subsets():
    splits = data.load_splits("fashion_mnist", max_train=500, max_val=200, seed=1)
    assert splits.sizes == {"train": 500, "val": 200, "test": 10_000}
    assert (splits.num_classes, splits.channels, splits.multi_label) == (10, 1, False)
    assert splits.class_names[0] == "t-shirt/top"
    x, y = data.dataset_to_numpy(splits.val)
    assert x.shape == (200, 28, 28, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 20))
    assert np.bincount(_labels(splits.train), minlength=10).min() == 50


def test_val_carved_from_train_is_disjoint_seeded_and_stratified(tmp_path):
    images, labels = _arrays(200, num_classes=4)
    images[:, 0, 0, 0] = np.arange(200)  # a unique id per image
    path = data.write_npz(tmp_path / "d.npz", {"train": (images, labels)})
    splits = data.load_splits(f"npz:{path}", validation_fraction=0.2, seed=3)
    assert splits.sizes == {"train": 160, "val": 40, "test": 0} and splits.test is None
    train_ids = {int(x[0, 0, 0]) for x in _images(splits.train)}
    val_ids = {int(x[0, 0, 0]) for x in _images(splits.val)}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 200
    np.testing.assert_array_equal(np.bincount(_labels(splits.val)), [10, 10, 10, 10])
    again = data.load_splits(f"npz:{path}", validation_fraction=0.2, seed=3)
    assert {int(x[0, 0, 0]) for x in _images(again.val)} == val_ids
    other = data.load_splits(f"npz:{path}", validation_fraction=0.2, seed=4)
    assert {int(x[0, 0, 0]) for x in _images(other.val)} != val_ids


def test_npz_uses_own_val_split_and_rgb(tmp_path):
    arrays = {s: _arrays(n, channels=3, seed=i) for i, (s, n) in
              enumerate((("train", 30), ("val", 12), ("test", 9)))}  # fmt: skip
    path = data.write_npz(tmp_path / "rgb.npz", arrays, class_names=("a", "b", "c"))
    splits = data.load_splits(f"npz:{path}")
    assert splits.sizes == {"train": 30, "val": 12, "test": 9}
    assert splits.channels == 3 and splits.class_names == ("a", "b", "c")
    x, y = data.dataset_to_numpy(splits.val)
    np.testing.assert_array_equal(x, arrays["val"][0])
    np.testing.assert_array_equal(y, arrays["val"][1])


def test_npz_multi_label_gives_float_multi_hot(tmp_path):
    arrays = {s: _arrays(40, num_classes=5, multi_label=True, seed=i)
              for i, s in enumerate(("train", "val", "test"))}  # fmt: skip
    path = data.write_npz(tmp_path / "ml.npz", arrays)
    splits = data.load_splits(f"npz:{path}")
    assert splits.multi_label and splits.num_classes == 5
    _, y = data.dataset_to_numpy(splits.train)
    assert y.shape == (40, 5) and y.dtype == np.float32
    np.testing.assert_array_equal(y, arrays["train"][1])


@pytest.mark.skipif(
    not SHARED_NPZ.is_file(), reason=f"needs {SHARED_NPZ} (the shared data folder beside the repo)"
)
def test_shared_pneumoniamnist_npz():
    splits = data.load_splits(f"npz:{SHARED_NPZ}")
    assert splits.sizes == {"train": 2428, "val": 270, "test": 468}
    assert (splits.num_classes, splits.channels, splits.multi_label) == (2, 1, False)
    np.testing.assert_array_equal(np.bincount(_labels(splits.val)), [135, 135])


def test_folder_of_class_subfolders(tmp_path):
    images, labels = _arrays(24, channels=3)
    root = data.write_image_folder(tmp_path / "imgs", images, labels, class_names=("x", "y", "z"))
    splits = data.load_splits(f"folder:{root}", validation_fraction=0.25)
    assert splits.class_names == ("x", "y", "z") and splits.channels == 3
    assert splits.sizes == {"train": 18, "val": 6, "test": 0}
    np.testing.assert_array_equal(np.bincount(_labels(splits.val)), [2, 2, 2])
    x, _ = data.dataset_to_numpy(splits.train)
    assert x.shape == (18, 16, 16, 3) and x.dtype == np.uint8


def test_folder_with_split_subfolders_keeps_grayscale(tmp_path):
    for split, n in (("train", 12), ("val", 6), ("test", 3)):
        images, labels = _arrays(n, num_classes=2, seed=n)
        data.write_image_folder(tmp_path / split, images, labels, class_names=("neg", "pos"))
    splits = data.load_splits(f"folder:{tmp_path}")
    assert splits.sizes == {"train": 12, "val": 6, "test": 3} and splits.channels == 1


def test_csv_single_and_multi_label_with_relative_paths(tmp_path):
    images, labels = _arrays(12, num_classes=2)
    path = data.write_csv(tmp_path / "single" / "labels.csv", images, labels,
                          splits=["train"] * 8 + ["val"] * 2 + ["test"] * 2)  # fmt: skip
    splits = data.load_splits(f"csv:{path}")
    assert splits.sizes == {"train": 8, "val": 2, "test": 2}
    x, y = data.dataset_to_numpy(splits.train)
    np.testing.assert_array_equal(x, images[:8])
    np.testing.assert_array_equal(y, labels[:8])
    images, multi = _arrays(10, num_classes=4, multi_label=True)
    path = data.write_csv(tmp_path / "multi" / "labels.csv", images, multi)
    splits = data.load_splits(f"csv:{path}", validation_fraction=0.2)
    assert splits.multi_label and splits.num_classes == 4
    assert splits.class_names == ("label_0", "label_1", "label_2", "label_3")
    assert data.dataset_to_numpy(splits.val)[1].shape == (2, 4)


def test_tfds_medical_builders_under_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        splits = data.load_splits("tfds:colorectal_histology", validation_fraction=0.25)
        assert splits.sizes["train"] == 15 and splits.sizes["val"] == 5
        assert splits.num_classes == 8 and splits.channels == 3
        batch = next(iter(data.make_pipeline(splits.train, resolution=32, batch_size=4,
                                             training=True, augment="medical")))  # fmt: skip
        assert batch[0].shape == (4, 32, 32, 3)
        # malaria: variable image sizes, resized in the pipeline
        splits = data.load_splits("tfds:malaria")
        shapes = {x.shape for x in _images(splits.train)}
        assert len(shapes) > 1
        x, y = next(iter(data.make_pipeline(splits.train, resolution=24, batch_size=8,
                                            training=False)))  # fmt: skip
        assert x.shape == (8, 24, 24, 3) and y.dtype == tf.int32
        # chexpert: multi-label from per-observation states
        splits = data.load_splits("tfds:chexpert")
        assert splits.multi_label and splits.num_classes == 14
        assert data.dataset_to_numpy(splits.val.map(lambda x, y: (x[:4, :4], y)))[1].shape[1] == 14


# ----------------------------------------------------------------------------- errors


def test_npz_without_train_images_names_the_key(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros(2))
    with pytest.raises(ValueError, match="train_images"):
        data.load_splits(f"npz:{path}")


def test_npz_label_out_of_range_names_the_key(tmp_path):
    images, labels = _arrays(10, num_classes=2)
    bad = labels.copy()
    bad[3] = 7
    path = data.write_npz(tmp_path / "bad.npz", {"train": (images, labels), "val": (images, bad)})
    with pytest.raises(ValueError, match=r"'val_labels' has label 7 out of range"):
        data.load_splits(f"npz:{path}")
    neg = labels.copy()
    neg[0] = -1
    path = data.write_npz(tmp_path / "neg.npz", {"train": (images, neg)})
    with pytest.raises(ValueError, match=r"'train_labels' has label -1"):
        data.load_splits(f"npz:{path}")


def test_npz_label_messages_say_what_is_accepted(tmp_path):
    images, labels = _arrays(10, num_classes=2)
    path = data.write_npz(tmp_path / "named.npz", {"train": (images, labels + 1)},
                          class_names=("a", "b"))  # fmt: skip
    with pytest.raises(ValueError, match=r"label 2 out of range; accepted: class ids 0 to 1 "
                                         r"\(2 classes, named by 'class_names'\)"):
        data.load_splits(f"npz:{path}")
    np.savez(tmp_path / "empty.npz", train_images=np.zeros((0, 8, 8), np.uint8),
             train_labels=np.zeros((0,), np.int64))  # fmt: skip
    with pytest.raises(ValueError, match="'train_labels' is empty, so the classes cannot"):
        data.load_splits(f"npz:{tmp_path / 'empty.npz'}")
    np.savez(tmp_path / "words.npz", train_images=images, train_labels=np.array(["cat"] * 10))
    with pytest.raises(ValueError, match="'train_labels' holds <U3 values; expected integer"):
        data.load_splits(f"npz:{tmp_path / 'words.npz'}")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npz_non_finite_pixels_are_refused_with_key_and_count(tmp_path, bad):
    images, labels = _arrays(12, num_classes=2)
    val = images.astype(np.float64)
    val[0, :3, :2] = bad
    np.savez(tmp_path / "d.npz", train_images=images, train_labels=labels,
             val_images=val, val_labels=labels)  # fmt: skip
    with pytest.raises(ValueError, match=r"'val_images' has 6 non-finite pixels \(NaN or inf\) "
                                         r"of 3072; replace or drop") as info:
        data.load_splits(f"npz:{tmp_path / 'd.npz'}")
    assert "\n" not in str(info.value)


def test_npz_float_pixels_out_of_range_show_the_range(tmp_path):
    images, labels = _arrays(12, num_classes=2)
    np.savez(tmp_path / "d.npz", train_images=images / 255.0 - 0.5, train_labels=labels)
    with pytest.raises(ValueError, match=r"pixels in \[-0.5, .*\], outside \[0, 255\]"):
        data.load_splits(f"npz:{tmp_path / 'd.npz'}")


def test_files_that_are_not_npz_archives_say_so(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("path,label\n")
    with pytest.raises(ValueError, match=r"'.*text.npz' is not an npz archive \(it starts "
                                         r"b'path,lab'\); write one with numpy.savez"):
        data.load_splits(f"npz:{text}")
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"not an npz archive \(a single .npy array\)"):
        data.load_splits(f"npz:{single}")
    truncated = tmp_path / "truncated.npz"
    data.write_npz(tmp_path / "ok.npz", {"train": _arrays(10, num_classes=2)})
    truncated.write_bytes((tmp_path / "ok.npz").read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"truncated.npz' is not an npz archive \(a damaged"):
        data.load_splits(f"npz:{truncated}")


def test_missing_npz_names_the_path_and_where_files_come_from(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.npz'; MedMNIST files come from "
                                                r"https://zenodo.org") as info:
        data.load_splits(f"npz:{tmp_path / 'nope.npz'}")
    assert "\n" not in str(info.value)


def test_empty_folder_fails_with_one_clear_line(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="no images") as info:
        data.load_splits(f"folder:{tmp_path}")
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_png_is_named(tmp_path):
    images, labels = _arrays(6, num_classes=2)
    root = data.write_image_folder(tmp_path, images, labels)
    broken = root / "class_1" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ValueError, match="broken.png") as info:
        data.load_splits(f"folder:{root}")
    assert "\n" not in str(info.value)


def test_unknown_scheme_lists_accepted_uris():
    with pytest.raises(ValueError, match="accepted: fashion_mnist .* medmnist:NAME"):
        data.load_splits("s3:bucket/data")


def test_missing_medmnist_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="pneumoniamnist.npz") as info:
        data.load_splits("medmnist:pneumoniamnist", data_dir=str(tmp_path), download=False)
    assert str(tmp_path) in str(info.value)


def test_medmnist_reads_a_local_copy(tmp_path):
    data.write_npz(tmp_path / "breastmnist.npz", {"train": _arrays(20, num_classes=2)})
    splits = data.load_splits("medmnist:breastmnist", data_dir=str(tmp_path), download=False)
    assert splits.sizes["train"] + splits.sizes["val"] == 20


def test_missing_tfds_dataset_fails_fast_with_one_line(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="'malaria'.*not prepared") as info:
        data.load_splits("tfds:malaria", data_dir=str(tmp_path))
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def gray_splits():
    return data.synthetic_splits(num_classes=3, image_size=28, channels=1, n_train=64, n_val=32)


def test_pipeline_shapes_dtypes_range_and_three_channels(gray_splits):
    ds = data.make_pipeline(gray_splits.val, resolution=32, batch_size=10, training=False)
    batches = list(ds.as_numpy_iterator())
    assert [len(x) for x, _ in batches] == [10, 10, 10, 2]
    x, y = batches[0]
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 150.0
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    one_hot = data.make_pipeline(gray_splits.val, resolution=32, batch_size=8, training=False,
                                 num_classes=3, one_hot=True, drop_remainder=True)  # fmt: skip
    _, y = next(iter(one_hot))
    assert y.shape == (8, 3) and y.dtype == tf.float32


def test_augmentation_only_in_training(gray_splits):
    for augment in ("flip", "medical"):
        a, b = (
            np.concatenate([x for x, _ in data.make_pipeline(
                gray_splits.val, resolution=32, batch_size=32, training=False, augment=augment
            ).as_numpy_iterator()])
            for _ in range(2)
        )  # fmt: skip
        plain = data.make_pipeline(gray_splits.val, resolution=32, batch_size=32, training=False)
        np.testing.assert_array_equal(a, next(iter(plain))[0].numpy())
        np.testing.assert_array_equal(a, b)
    train = data.make_pipeline(gray_splits.train, resolution=32, batch_size=64, training=True,
                               augment="flip", shuffle_buffer=1)  # fmt: skip
    plain = data.make_pipeline(gray_splits.train, resolution=32, batch_size=64, training=False)
    flipped, original = next(iter(train))[0].numpy(), next(iter(plain))[0].numpy()
    same = [np.array_equal(f, o) for f, o in zip(flipped, original, strict=True)]
    mirrored = [np.array_equal(f, o[:, ::-1]) for f, o in zip(flipped, original, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54


@pytest.mark.parametrize("augment", ["none", "medical", "inception"])
def test_pipeline_is_deterministic_with_a_seed(gray_splits, augment):
    def epoch(seed):
        ds = data.make_pipeline(gray_splits.train, resolution=32, batch_size=16, training=True,
                                augment=augment, seed=seed)  # fmt: skip
        return np.concatenate([x for x, _ in ds.as_numpy_iterator()])

    first = epoch(5)
    np.testing.assert_array_equal(first, epoch(5))
    assert not np.array_equal(first, epoch(6))


def test_inception_crops_in_training_and_centre_crops_in_eval():
    splits = data.synthetic_splits(num_classes=2, image_size=40, channels=3, n_train=16, n_val=8)
    train = data.make_pipeline(splits.train, resolution=32, batch_size=16, training=True,
                               augment="inception")  # fmt: skip
    x, _ = next(iter(train))
    assert x.shape == (16, 32, 32, 3)
    evaluation = data.make_pipeline(splits.val, resolution=35, batch_size=8, training=False,
                                    augment="inception")  # fmt: skip
    x, _ = next(iter(evaluation))
    # a 35-pixel centre crop of 40 is kept at 35: no resize, so pixels equal the source's
    source, _ = data.dataset_to_numpy(splits.val)
    np.testing.assert_array_equal(x.numpy(), source[:, 3:38, 3:38].astype(np.float32))


def test_unknown_augment_is_rejected(gray_splits):
    with pytest.raises(ValueError, match="unknown augment 'mixup'; accepted: none, flip"):
        data.make_pipeline(gray_splits.train, resolution=32, batch_size=4, training=True,
                           augment="mixup")  # fmt: skip


def test_synthetic_data_is_learnable_by_a_tiny_model():
    import keras

    splits = data.synthetic_splits(num_classes=4, image_size=16, n_train=256, n_val=64, seed=2)
    train = data.make_pipeline(splits.train, resolution=16, batch_size=32, training=True)
    val = data.make_pipeline(splits.val, resolution=16, batch_size=64, training=False)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(8, 4, strides=4, activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    model.fit(train, epochs=4, verbose=0, shuffle=False)
    assert model.evaluate(val, verbose=0)[1] > 0.9


def test_tfds_split_slice_and_stratified_max_train():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        splits = data.load_splits("tfds:pneumonia_mnist:train[:50%]", max_train=6, seed=0)
        assert splits.channels == 1 and splits.num_classes == 2
        assert splits.sizes["train"] == 6
        assert sorted(set(_labels(splits.train))) == [0, 1]
        x, _ = next(iter(data.make_pipeline(splits.train, resolution=32, batch_size=6,
                                            training=False)))  # fmt: skip
        assert x.shape == (6, 32, 32, 3)


def test_large_arrays_stream_through_a_generator(tmp_path, monkeypatch):
    from efficientnet_search.data import records

    monkeypatch.setattr(records, "_LARGE_ARRAY_BYTES", 0)
    images, labels = _arrays(20)
    path = data.write_npz(tmp_path / "d.npz", {"train": (images, labels)})
    splits = data.load_splits(f"npz:{path}", validation_fraction=0.5)
    assert int(splits.train.cardinality()) == 10
    x, y = data.dataset_to_numpy(splits.train)
    assert x.shape == (10, 16, 16, 1) and set(y) <= {0, 1, 2}


def test_bad_arguments_name_the_value(gray_splits):
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load_splits("fashion_mnist", validation_fraction=1.5)
    with pytest.raises(ValueError, match="max_train"):
        data.load_splits("fashion_mnist", max_train=0)
    with pytest.raises(ValueError, match="one_hot=True needs num_classes"):
        data.make_pipeline(gray_splits.val, resolution=32, batch_size=4, training=False,
                           one_hot=True)  # fmt: skip


def test_parallel_augmentation_and_randaugment_keep_shapes_and_range(gray_splits):
    for augment in ("medical", "randaugment"):
        ds = data.make_pipeline(gray_splits.train, resolution=32, batch_size=16, training=True,
                                augment=augment, deterministic=False)  # fmt: skip
        x, _ = next(iter(ds))
        assert x.shape == (16, 32, 32, 3) and 0.0 <= float(tf.reduce_min(x))
        assert float(tf.reduce_max(x)) <= 255.0


@pytest.mark.parametrize("image_size", [28, 32])
def test_pipeline_reads_and_resizes_each_image_once_across_epochs(image_size):
    splits = data.synthetic_splits(num_classes=2, image_size=image_size, n_train=40, n_val=8)
    reads = []

    def count(x, y):
        tf.py_function(lambda: reads.append(1) or 0, [], tf.int32)
        return x, y

    source = splits.train.map(count)
    ds = data.make_pipeline(source, resolution=32, batch_size=16, training=True, repeat=True)
    assert sum(1 for _ in ds.take(10)) == 10  # 160 images: 4 epochs of 40
    assert len(reads) == 40
