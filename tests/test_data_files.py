"""Image datasets read from their publishers' files (fixtures written in the exact formats):
readers give back exactly what was written, the prepared cache is shared and keyed by content,
run ids ignore the data root, and every bad file is one clear message."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from fixtures_data import (
    idx_bytes,
    write_cifar10,
    write_cifar10c,
    write_cifar100,
    write_cinic10,
    write_idx_dataset,
    write_image_folder,
    write_npz,
    write_svhn,
)

from dataworth.data import DATASET_SPECS, load_dataset, nested_subset, prepare_dataset, stratified_order
from dataworth.data import cache as data_cache
from dataworth.data import readers
from dataworth.data.readers import DataFileError, md5sum
from dataworth.data.sources import SOURCES, parse_ref
from dataworth.study import StudyError, load_study


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    # Each test its own root: no DATAWORTH_DATA/_CACHE from the environment, no resolutions
    # remembered from another test's root.
    monkeypatch.delenv("DATAWORTH_DATA", raising=False)
    monkeypatch.delenv("DATAWORTH_CACHE", raising=False)
    data_cache._RESOLVED.clear()


def read(source: str, root, part: str):
    return SOURCES[source].read(root, part)


def test_cifar10_folder_and_archive_read_back_exactly(tmp_path, monkeypatch):
    folder_root, archive_root = tmp_path / "a", tmp_path / "b"
    written = write_cifar10(folder_root)
    for part in ("train", "test"):
        got = read("cifar10", folder_root, part)
        assert got["x"].dtype == np.uint8 and got["x"].shape == (len(written[part][1]), 3, 32, 32)
        assert np.array_equal(got["x"], written[part][0]) and np.array_equal(got["y"], written[part][1])
    # Pixel (row 0, col 1) of image 0's green plane is byte 1024 + 1 of its 3072-byte row.
    raw = pickle.loads((folder_root / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes")
    assert read("cifar10", folder_root, "train")["x"][0, 1, 0, 1] == raw[b"data"][0][1025]

    written = write_cifar10(archive_root, archive=True)
    archive = archive_root / "cifar-10-python.tar.gz"
    with pytest.raises(DataFileError, match=r"cifar-10-python.tar.gz: md5 [0-9a-f]{32} but the published archive "
                                            r"has c58f30108f718f92721af3b95e74349a"):
        read("cifar10", archive_root, "train")
    monkeypatch.setattr(SOURCES["cifar10"], "md5", md5sum(archive))  # the fixture's own archive
    got = read("cifar10", archive_root, "train")
    assert np.array_equal(got["x"], written["train"][0]) and np.array_equal(got["y"], written["train"][1])


def test_cifar100_fine_and_coarse_labels(tmp_path):
    written = write_cifar100(tmp_path)
    got = read("cifar100", tmp_path, "test")
    x, fine, coarse = written["test"]
    assert np.array_equal(got["x"], x) and np.array_equal(got["y"], fine) and np.array_equal(got["y_coarse"], coarse)
    assert np.array_equal(SOURCES["cifar100"].select(got, "coarse")[1], coarse)
    assert np.array_equal(SOURCES["cifar100"].select(got, "fine")[1], fine)


def test_cinic10_png_folders_with_cifar10_origin(tmp_path):
    written = write_cinic10(tmp_path, grey=1)
    for split in ("train", "valid", "test"):
        got = read("cinic10", tmp_path, split)
        x, y, mask = written[split]
        assert got["x"].shape == x.shape and np.array_equal(got["x"], x) and np.array_equal(got["y"], y)
        assert np.array_equal(got["from_cifar10"], mask) and mask.sum() == 10
        kept_x, kept_y = SOURCES["cinic10"].select(got, "no-cifar10")
        assert np.array_equal(kept_x, x[~mask]) and np.array_equal(kept_y, y[~mask])


def test_cifar10c_corruption_and_severity(tmp_path):
    written = write_cifar10c(tmp_path, n=4)
    x, y = written["fog"]
    part = read("cifar10c", tmp_path, "fog")
    for severity in (1, 3, 5):
        got_x, got_y = SOURCES["cifar10c"].select(part, str(severity))
        rows = slice(4 * (severity - 1), 4 * severity)
        assert np.array_equal(got_x, x[rows]) and np.array_equal(got_y, y[rows])
    # (H, W, C) on disk: pixel (2, 5) channel 1 of the first severity-3 image.
    on_disk = np.load(tmp_path / "CIFAR-10-C" / "fog.npy")
    assert SOURCES["cifar10c"].select(part, "3")[0][0, 1, 2, 5] == on_disk[8, 2, 5, 1]


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_plain_and_gzipped(tmp_path, gz):
    written = write_idx_dataset(tmp_path, "fashion-mnist", gz=gz)
    for part in ("train", "test"):
        got = read("fashion_mnist", tmp_path, part)
        assert np.array_equal(got["x"], written[part][0]) and np.array_equal(got["y"], written[part][1])


def test_emnist_is_transposed_and_letters_start_at_zero(tmp_path):
    written = write_idx_dataset(tmp_path, "emnist", prefix="emnist-letters-", names=("train", "test"),
                                classes=26, first_label=1)
    got = read("emnist", tmp_path, "letters-train")
    x, y = written["train"]
    assert np.array_equal(got["x"], x.transpose(0, 1, 3, 2)) and np.array_equal(got["y"], y - 1)
    assert got["y"].min() == 0 and got["y"].max() == 25


def test_svhn_mat_label_10_is_digit_0(tmp_path):
    written = write_svhn(tmp_path)
    got = read("svhn", tmp_path, "train")
    assert np.array_equal(got["x"], written["train"][0]) and np.array_equal(got["y"], written["train"][1])
    assert 0 in got["y"] and 10 not in got["y"]


def test_image_folder_and_npz(tmp_path):
    x, y = write_image_folder(tmp_path, "mine/train", grey=True)
    got = read("folder", tmp_path, "mine/train")
    assert got["x"].shape == (12, 1, 16, 16) and np.array_equal(got["x"], x) and np.array_equal(got["y"], y)
    x, y = write_npz(tmp_path, "own/train.npz")
    got = read("npz", tmp_path, "own/train.npz")
    assert np.array_equal(got["x"], x) and np.array_equal(got["y"], y)


# ---------------------------------------------------------------------------------------------
# Malformed files: one line naming the file and what was expected


def test_malformed_files_name_the_file_and_what_is_expected(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x-idx3-ubyte").write_bytes(bytes([0, 0, 0x0D, 3]) + b"\0" * 12)
    with pytest.raises(DataFileError, match=r"x-idx3-ubyte: not an idx file of unsigned bytes"):
        readers.read_idx(bad / "x-idx3-ubyte")
    (bad / "y-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))[:-2]))
    with pytest.raises(DataFileError, match=r"header says \(5,\) = 5 bytes of data but the file holds 3"):
        readers.read_idx(bad / "y-idx1-ubyte.gz")

    (bad / "batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, 2))
    with pytest.raises(DataFileError, match=r"batch: 2 images but 1 labels"):
        readers.read_cifar(tmp_path, ["bad/batch"])
    (bad / "batch").write_bytes(pickle.dumps({b"pixels": []}, 2))
    with pytest.raises(DataFileError, match=r"a CIFAR batch is a dict with b'data', b'labels'; found keys \['pixels'\]"):
        readers.read_cifar(tmp_path, ["bad/batch"])
    (bad / "batch").write_bytes(b"not a pickle")
    with pytest.raises(DataFileError, match=r"batch: not a pickled CIFAR batch"):
        readers.read_cifar(tmp_path, ["bad/batch"])

    np.save(bad / "fog.npy", np.zeros((7, 32, 32, 3), np.uint8))
    np.save(bad / "labels.npy", np.zeros(7, np.uint8))
    with pytest.raises(DataFileError, match=r"fog.npy: must be uint8 \(5 x n, 32, 32, 3\)"):
        readers.read_cifar10c(bad, "fog")
    np.save(bad / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    with pytest.raises(DataFileError, match=r"labels.npy: 7 labels but fog.npy has 10 images"):
        readers.read_cifar10c(bad, "fog")

    write_image_folder(tmp_path, "sizes", classes=("a",), per_class=1, size=16)
    write_image_folder(tmp_path, "sizes2", classes=("b",), per_class=1, size=8)
    (tmp_path / "sizes2" / "b").rename(tmp_path / "sizes" / "b")
    with pytest.raises(DataFileError, match=r"b/000.png: 8x8 pixels but the other images are 16x16"):
        readers.read_image_folder(tmp_path / "sizes")
    (tmp_path / "sizes" / "a" / "000.png").write_bytes(b"garbage")
    with pytest.raises(DataFileError, match=r"a/000.png: not a readable image"):
        readers.read_image_folder(tmp_path / "sizes")

    from scipy.io import savemat

    savemat(bad / "m.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(DataFileError, match=r"m.mat: SVHN labels are 1..10 \(10 = digit 0\); found 1..11"):
        readers.read_svhn_mat(bad / "m.mat")
    np.savez(bad / "own.npz", x=np.zeros((2, 4, 4), np.float32), y=np.zeros(2, int))
    with pytest.raises(DataFileError, match=r"own.npz: x must be uint8"):
        readers.read_npz(bad / "own.npz")


@pytest.mark.parametrize("ref, message", [
    ("cifar10", "is not a test-set reference"),
    ("imagenet:val", "unknown source 'imagenet'"),
    ("cifar10c:fog", "cifar10c needs a severity"),
    ("cifar10c:fog@6", "cifar10c takes options @1, @2, @3, @4, @5, not @6"),
    ("cifar10c:smoke@3", "cifar10c has parts brightness, "),
    ("cinic10:test@coarse", "cinic10 takes options @no-cifar10"),
    ("folder:../elsewhere", "relative to the data root"),
])
def test_bad_references_say_what_is_allowed(ref, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_ref(ref)


# ---------------------------------------------------------------------------------------------
# Studies on file datasets


def cinic_study(root, **dataset) -> dict:
    return {
        "study": "cinic-tiny",
        "dataset": {"name": "cinic10", "root": str(root), **dataset},
        "augmentations": {"none": []},
        "grid": {"n_train": [10, 20], "augmentation": ["none"], "model": [{"name": "cnn2d", "width": 4}], "seed": [0]},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2},
    }


@pytest.fixture
def cinic_root(tmp_path):
    root = tmp_path / "data"
    written = write_cinic10(root)
    cifar = write_cifar10(root)
    corrupted = write_cifar10c(root, n=4)
    return root, written, cifar, corrupted


def test_cinic10_pool_test_and_ood_sets(cinic_root):
    root, written, cifar, corrupted = cinic_root
    study = load_study(cinic_study(root))
    meta = study.spec.dataset.prepared()
    assert meta["sizes"] == {"train": 50, "test": 20, "ood": 10} and meta["num_classes"] == 10
    arrays = data_cache.load_arrays(meta)
    assert np.array_equal(arrays["x_train"], np.concatenate([written["train"][0], written["valid"][0]]))
    assert np.array_equal(arrays["x_ood"], cifar["test"][0]) and np.array_equal(arrays["y_test"], written["test"][1])
    # Per-channel statistics of the pool in pixel units, against NumPy on the written images.
    pool = arrays["x_train"].astype(np.float64)
    assert np.allclose(meta["mean"], pool.mean(axis=(0, 2, 3))) and np.allclose(meta["std"], pool.std(axis=(0, 2, 3)))

    clean = load_study(cinic_study(root, exclude_cifar10=True, ood="cifar10c:gaussian_noise@2"))
    meta = clean.spec.dataset.prepared()
    keep = [~written[s][2] for s in ("train", "valid")]
    assert meta["sizes"] == {"train": 30, "test": 20, "ood": 4}
    arrays = data_cache.load_arrays(meta)
    assert np.array_equal(arrays["x_train"], np.concatenate([written["train"][0][keep[0]], written["valid"][0][keep[1]]]))
    assert np.array_equal(arrays["x_ood"], corrupted["gaussian_noise"][0][4:8])

    # Sizes are checked against the pool read from the files.
    too_many = cinic_study(root, exclude_cifar10=True)
    too_many["grid"]["n_train"] = [10, 40]
    with pytest.raises(StudyError, match=r"grid.n_train\[1\]: 40 is larger than the cinic10 training pool \(30 samples\)"):
        load_study(too_many)


def test_run_ids_ignore_the_root_and_follow_the_content(cinic_root, tmp_path, monkeypatch):
    import shutil

    root = cinic_root[0]
    ids = [r["run_id"] for r in load_study(cinic_study(root)).runs]
    moved = tmp_path / "cluster" / "shared"
    shutil.copytree(root, moved, ignore=shutil.ignore_patterns(".dataworth-cache"))
    data_cache._RESOLVED.clear()
    assert [r["run_id"] for r in load_study(cinic_study(moved)).runs] == ids
    monkeypatch.setenv("DATAWORTH_DATA", str(moved))  # the environment wins over the study's root
    assert [r["run_id"] for r in load_study(cinic_study("/not/this/one")).runs] == ids
    assert load_study(cinic_study(root)).runs[0]["dataset"]["sha256"] == load_study(cinic_study(moved)).spec.dataset.prepared()["sha256"]
    monkeypatch.delenv("DATAWORTH_DATA")

    # Other pixels: other ids, even with the same settings and paths.
    from PIL import Image

    image = moved / "cinic-10" / "train" / "cat" / "n030001_1.png"
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(image.with_name("new.png"))
    image.unlink()  # a changed file, as a download would bring it: the folder changes
    assert [r["run_id"] for r in load_study(cinic_study(moved)).runs] != ids


def test_cache_is_prepared_once_and_shared(cinic_root, monkeypatch):
    root = cinic_root[0]
    calls = []
    original = SOURCES["cinic10"].read
    monkeypatch.setattr(SOURCES["cinic10"], "read", lambda r, p: calls.append(p) or original(r, p))
    load_study(cinic_study(root))
    data_cache._RESOLVED.clear()
    other = cinic_study(root, exclude_cifar10=True)
    other["study"] = "another"
    load_study(other)  # another study on the same root reads no PNG again
    assert sorted(calls) == ["test", "train", "valid"]
    cache = root / ".dataworth-cache"
    assert len(list((cache / "datasets").iterdir())) == 2 and not list(cache.rglob("*.tmp"))

    # The root moved with its cache (or mounted elsewhere, mtimes kept): nothing is read again.
    moved = root.parent / "mounted-elsewhere"
    root.rename(moved)
    data_cache._RESOLVED.clear()
    assert load_study(cinic_study(moved)).runs and sorted(calls) == ["test", "train", "valid"]


def test_prepared_pointer_loads_uint8_and_normalises_on_the_device(cinic_root, tmp_path):
    root = cinic_root[0]
    study = load_study(cinic_study(root))
    meta = prepare_dataset(study.dataset_config(), tmp_path / "d.pt")
    assert (tmp_path / "d.pt").stat().st_size < 10_000  # a pointer, not the arrays
    data = load_dataset(tmp_path / "d.pt")
    assert data.stores_pixels and data.x["train"].dtype == torch.uint8 and data.x["train"].shape == (50, 3, 32, 32)
    assert meta["sha256"] == data.meta["sha256"]
    batch = data.x["train"][:5]
    expected = (batch.numpy().astype(np.float64) - np.array(meta["mean"])[:, None, None]) / np.array(meta["std"])[:, None, None]
    assert np.allclose(data.eval_input(batch).numpy(), expected, atol=1e-5)
    assert np.allclose(data.training_policy(lambda b, g: b + 1)(batch, None).numpy(),
                       expected + 1 / np.array(meta["std"])[:, None, None], atol=1e-5)

    net = torch.nn.Conv2d(3, 2, 1)
    net.features = net.forward
    wrapped = data.for_evaluation(net)
    assert torch.allclose(wrapped(batch), net(torch.as_tensor(expected, dtype=torch.float32)), atol=1e-4)


def test_normalize_cifar10_uses_cifar10s_statistics_and_enters_run_ids_only_when_set(cinic_root, tmp_path):
    root = cinic_root[0]
    pool_ids = [r["run_id"] for r in load_study(cinic_study(root)).runs]
    assert [r["run_id"] for r in load_study(cinic_study(root, normalize="pool")).runs] == pool_ids
    study = load_study(cinic_study(root, normalize="cifar10"))
    assert [r["run_id"] for r in study.runs] != pool_ids and study.runs[0]["dataset"]["normalize"] == "cifar10"
    prepare_dataset(study.dataset_config(), tmp_path / "d.pt")
    data = load_dataset(tmp_path / "d.pt")
    # The values of the paper's config/data/CINIC10.yaml (CIFAR-10's), in 0..1 units there.
    mean = np.array([0.4914672374725342, 0.4822617471218109, 0.4467701315879822])[:, None, None]
    std = np.array([0.24703224003314972, 0.24348513782024384, 0.26158785820007324])[:, None, None]
    batch = data.x["train"][:4]
    assert np.allclose(data.eval_input(batch).numpy(), (batch.numpy() / 255.0 - mean) / std, atol=1e-5)
    assert len(list((root / ".dataworth-cache" / "datasets").iterdir())) == 1  # the same prepared arrays

    grey = tmp_path / "grey"
    write_idx_dataset(grey, "mnist")
    mnist = {**cinic_study(grey), "dataset": {"name": "mnist", "root": str(grey), "ood": "mnist:test",
                                              "normalize": "cifar10"}}
    with pytest.raises(StudyError, match=r"dataset.normalize: cifar10 holds statistics for 3-channel images; "
                                         r"this dataset's have 1; allowed: pool"):
        load_study(mnist)


def test_ops_too_large_for_the_images_are_refused_at_validation(cinic_root):
    # 32x32 images: reflect padding reaches at most 31 pixels out, symmetric 32, a blur kernel 63 taps.
    study = cinic_study(cinic_root[0])
    study["augmentations"]["big"] = [{"op": "crop", "padding": 32, "padding_mode": "reflect"},
                                     {"op": "crop", "padding": 32, "padding_mode": "symmetric"},
                                     {"op": "gaussian_blur", "kernel_size": 65}]
    study["grid"]["augmentation"] = ["none", "big"]
    with pytest.raises(StudyError) as error:
        load_study(study)
    message = str(error.value)
    assert ("augmentations.big[0].padding: 32 with padding_mode reflect is too large for 32x32 images; "
            "allowed: 1..31") in message
    assert "augmentations.big[1]" not in message
    assert "augmentations.big[2].kernel_size: 65 is too large for 32x32 images; allowed: odd, up to 63" in message
    study["augmentations"]["big"] = [{"op": "crop", "padding": 31, "padding_mode": "reflect"},
                                     {"op": "gaussian_blur", "kernel_size": 63}]
    assert load_study(study).runs


def test_nested_stratified_subsets_of_a_file_pool(cinic_root):
    root = cinic_root[0]
    y = data_cache.load_arrays(load_study(cinic_study(root)).spec.dataset.prepared())["y_train"]
    order = stratified_order(y, seed=5)
    for n in (10, 20, 37, 50):
        assert np.array_equal(nested_subset(y, n, 5), order[:n])
        counts = np.bincount(y[order[:n]], minlength=10)
        assert np.all(np.abs(counts - n / 10) <= 1)


def test_missing_files_are_one_message_before_anything_runs(tmp_path):
    with pytest.raises(StudyError, match=f"dataset: the data root {tmp_path / 'nowhere'} \\(dataset.root\\) is not a folder"):
        load_study(cinic_study(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    study = cinic_study(tmp_path / "empty")
    with pytest.raises(StudyError) as err:
        load_study(study)
    message = str(err.value)
    assert f"dataset: CINIC-10: {tmp_path / 'empty' / 'cinic-10' / 'train'}: folder not found; expected layout: " \
           "cinic-10/{train,valid,test}/<class>/*.png" in message
    assert "`dataworth data verify --root" in message and len(err.value.problems) == 1

    no_root = cinic_study(tmp_path)
    del no_root["dataset"]["root"]
    with pytest.raises(StudyError, match="no data root: set dataset.root in the study or the environment variable "
                                         "DATAWORTH_DATA"):
        load_study(no_root)

    write_cinic10(tmp_path / "c")
    with pytest.raises(StudyError, match=r"dataset: CIFAR-10 \(python version\): .*cifar-10-batches-py or .*"
                                         r"cifar-10-python.tar.gz: not found; expected layout"):
        load_study(cinic_study(tmp_path / "c"))
    with pytest.raises(StudyError, match=r"dataset.ood: 'cifar10c:fog': cifar10c needs a severity"):
        load_study(cinic_study(tmp_path / "c", ood="cifar10c:fog"))


def test_test_sets_must_share_the_pools_classes_and_shape(tmp_path):
    root = tmp_path
    write_image_folder(root, "mine/train")
    write_image_folder(root, "mine/test", classes=("a", "b", "c", "d"))
    write_npz(root, "other.npz", shape=(3, 8, 8))
    study = {**cinic_study(root), "dataset": {"name": "image_folder", "root": str(root), "train": "mine/train",
                                              "test": "folder:mine/test", "ood": "npz:other.npz"}}
    study["grid"]["n_train"] = [6]
    with pytest.raises(StudyError, match=r"dataset.test: folder:mine/test has label 3 but the training pool has 3 classes"):
        load_study(study)
    study["dataset"]["test"] = "folder:mine/train"
    with pytest.raises(StudyError, match=r"dataset.ood: npz:other.npz has images of shape \(3, 8, 8\)"):
        load_study(study)


def test_every_file_dataset_is_registered():
    assert {"cifar10", "cifar100", "cinic10", "mnist", "fashion_mnist", "emnist", "svhn", "image_folder", "npz"} <= set(DATASET_SPECS)
    assert all(DATASET_SPECS[n].stores_pixels for n in ("cifar10", "cinic10", "npz"))
    assert not any(DATASET_SPECS[n].stores_pixels for n in ("mnist1d", "digits", "synthetic"))


# ---------------------------------------------------------------------------------------------
# dataworth data list | verify | prepare


def test_data_commands_list_verify_and_prepare(tmp_path, capsys, monkeypatch):
    from dataworth.cli import main

    root = tmp_path / "data"
    write_cifar10(root, archive=True)
    write_idx_dataset(root, "mnist")
    write_cifar10c(root, corruptions=("fog",), n=2)
    main(["data", "list", "--root", str(root)])
    out = capsys.readouterr().out
    assert "cifar10        CIFAR-10 (python version)" in out and "found: train, test" in out
    assert "cinic-10/{train,valid,test}/<class>/*.png" in out and "found: fog" in out

    # The fixture's archive is not the published one: verify names the file and both checksums.
    with pytest.raises(SystemExit) as exit_:
        main(["data", "verify", "--root", str(root)])
    out = capsys.readouterr().out
    assert exit_.value.code == 1
    assert "FAIL cifar10:train: CIFAR-10 (python version): " in out and "md5 " in out and "c58f30108f718f92721af3b95e74349a" in out
    assert "ok   mnist:train: 30 images of (1, 28, 28) uint8, labels 0..9 (published: 60,000)" in out
    assert "ok   cifar10c:fog: 10 images of (3, 32, 32) uint8" in out

    monkeypatch.setattr(SOURCES["cifar10"], "md5", md5sum(root / "cifar-10-python.tar.gz"))
    main(["data", "verify", "--root", str(root), "cifar10"])
    assert capsys.readouterr().out.count("ok   cifar10:") == 2

    # A read-only data root: the cache goes to DATAWORTH_CACHE.
    cache = tmp_path / "cache"
    monkeypatch.setenv("DATAWORTH_CACHE", str(cache))
    main(["data", "prepare", "--root", str(root), "mnist:test", "cifar10c:fog"])
    out = capsys.readouterr().out
    assert "prepared mnist:test -> " in out and "prepared cifar10c:fog -> " in out
    assert not (root / ".dataworth-cache").exists()
    part = next((cache / "parts" / "mnist").glob("test-*"))
    assert np.load(part / "x.npy").dtype == np.uint8 and len(np.load(part / "y.npy")) == 10

    with pytest.raises(SystemExit) as exit_:
        main(["data", "prepare", "--root", str(root), "cifar10c:smoke"])
    assert exit_.value.code == 2 and "cifar10c has parts" in capsys.readouterr().err


def test_idx_and_svhn_studies_validate(tmp_path):
    root = tmp_path
    write_idx_dataset(root, "emnist", prefix="emnist-digits-", names=("train", "test"))
    write_svhn(root)
    study = {**cinic_study(root), "dataset": {"name": "emnist", "split": "digits", "root": str(root),
                                              "ood": "svhn:test"}}
    with pytest.raises(StudyError, match=r"dataset.ood: svhn:test has images of shape \(3, 32, 32\) but the training "
                                         r"pool \(emnist:digits-train\) has \(1, 28, 28\)"):
        load_study(study)
    study["dataset"]["ood"] = "emnist:digits-test"
    study["grid"]["model"] = [{"name": "cnn2d", "width": 4}]
    loaded = load_study(study)
    assert loaded.spec.dataset.prepared()["sizes"] == {"train": 30, "test": 10, "ood": 10}
    study["dataset"]["split"] = "kanji"
    with pytest.raises(StudyError, match=r"dataset.split: "):
        load_study(study)


def test_cinic10_paper_pool_all_splits_deduplicated_with_a_held_out_test_set(tmp_path):
    import shutil

    root = tmp_path / "data"
    written = write_cinic10(root, per_class={"train": 3, "valid": 2, "test": 2})
    write_cifar10(root)
    # One image twice (CINIC-10 has duplicates): in train and again in valid.
    shutil.copy(root / "cinic-10" / "train" / "cat" / "n030001_1.png", root / "cinic-10" / "valid" / "cat" / "dup.png")
    study = cinic_study(root, pool="all", exclude_cifar10=True, deduplicate=True, holdout=8)
    meta = load_study(study).spec.dataset.prepared()
    arrays = data_cache.load_arrays(meta)
    assert meta["sizes"] == {"train": 32, "test": 8, "ood": 10} and meta["test"].startswith("8 images held out")

    def images(x):
        return {image.tobytes() for image in x}

    expected = set()
    for split in ("train", "valid", "test"):
        x, _, from_cifar10 = written[split]
        expected |= images(x[~from_cifar10])
    assert len(expected) == 40
    train, test = images(arrays["x_train"]), images(arrays["x_test"])
    assert len(train) == 32 and len(test) == 8 and not train & test and train | test == expected

    with pytest.raises(StudyError, match="pool all holds every CINIC-10 split"):
        load_study(cinic_study(root, pool="all", test="cinic10:test"))


def test_a_pointer_prepared_elsewhere_finds_its_arrays_under_DATAWORTH_DATA(cinic_root, tmp_path, monkeypatch):
    from dataworth.data import _LOADED

    root = cinic_root[0]
    meta = prepare_dataset(load_study(cinic_study(root)).dataset_config(), tmp_path / "d.pt")
    elsewhere = tmp_path / "other-machine"
    root.rename(elsewhere)  # results pulled onto a machine whose data root is elsewhere
    _LOADED.clear()
    data_cache._RESOLVED.clear()
    with pytest.raises(DataFileError, match=r"the prepared arrays of cinic10 are not there .* set DATAWORTH_DATA"):
        load_dataset(tmp_path / "d.pt")
    monkeypatch.setenv("DATAWORTH_DATA", str(elsewhere))
    data = load_dataset(tmp_path / "d.pt")
    assert data.meta["sha256"] == meta["sha256"] and data.x["train"].shape == (50, 3, 32, 32)

    # Other images under that root: refused, not silently trained on.
    _LOADED.clear()
    data_cache._RESOLVED.clear()
    (elsewhere / "cinic-10" / "train" / "cat" / "n030001_1.png").unlink()
    with pytest.raises(DataFileError, match="hold other images than the ones this study was prepared with"):
        load_dataset(tmp_path / "d.pt")
