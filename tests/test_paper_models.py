"""The architectures of Geiping et al. (2022), "How Much Data Are Augmentations Worth?".

Parameter counts are the paper code's: computed once by a throwaway script that walks the layer
lists of their definitions (JonasGeiping/dataaugs: dataaug/models/resnets.py with the resnet18
config: CIFAR stem, downsample C; convmixer.py with convmixer.yaml; swin_transformers.py with
swinv2.yaml, built as Swin V1 by their construct_model; JonasGeiping/fullbatchtraining, which
their models import from: vgg.py with VGG13 and head CIFAR, pyramidnets.py with pyramidnet110.yaml:
alpha 84, basic blocks) and adds up weights, biases and BatchNorm/LayerNorm affine terms by hand
arithmetic, e.g. ResNet-18 at width w: stem 27w + 2w, per stage two basic blocks of 9 c_in c_out +
9 c_out^2 + 4 c_out (+ a 1x1 conv + BatchNorm where channels change), head 8w * 10 + 10. PyramidNet
110/84 gives 3.90 M, the 3.8 M of Han et al.'s table. Counts are taken on the meta device (no memory).
"""

from __future__ import annotations

import pytest
import torch
import yaml

from conftest import REPO
from dataworth.models import build_model

TEN_CLASSES = 10


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Forward passes of deep networks on tiny batches: thread start-up and contention with other
    processes cost far more than they save (a PyramidNet-110 pass, 0.2 s on one thread, took 40 s on
    two threads of a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parameters(name: str, width: int, **options) -> int:
    with torch.device("meta"):
        model = build_model(name, width, (3, 32, 32), TEN_CLASSES, **options)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width, expected", [
    (4, 44_622), (8, 176_402), (16, 701_466), (32, 2_797_610), (64, 11_173_962), (96, 25_129_066),
    (128, 44_662_922), (196, 104_695_566), (256, 178_585_866), (512, 714_211_850),
])
def test_resnet18_parameters_at_fig3a_widths(width, expected):
    assert parameters("resnet18", width, downsample="C", init="paper") == expected


@pytest.mark.parametrize("name, width, expected", [
    ("vgg13", 64, 9_416_010),
    ("pyramidnet110", 84, 3_904_446),
    ("convmixer", 256, 1_277_962),
    ("swin", 128, 4_090_794),
    ("flip_invariant_resnet18", 64, 11_173_962),  # their OutputAveragedResNet adds no parameter
    ("orbit_resnet18", 64, 11_173_962),  # the orbit map's gradient filter is a buffer
])
def test_fig3b_and_fig4_parameters(name, width, expected):
    assert parameters(name, width) == expected


def test_e2_resnet18_parameters_by_hand():
    # D2 has 4 elements: a stage of planes p has int(p * 2 / 4) = p / 2 regular fields of size 4.
    # A group conv fields_in -> fields_out with a k x k kernel has fields_out * fields_in * 4 * k^2 weights;
    # each FieldNorm has 2 per field. Width 8: fields 4, 4, 8, 16, 32.
    f = [4, 4, 8, 16, 32]
    n = f[0] * 3 * 25  # the 5x5 lifting conv
    for stage in range(4):
        fin, fout = f[stage], f[stage + 1]
        n += 2 * fin + fout * fin * 4 * 9 + 2 * fout + fout * fout * 4 * 9  # block 1: bn1, conv1, bn2, conv2
        n += fout * fin * 4 if fin != fout or stage > 0 else 0  # its 1x1 shortcut
        n += 2 * fout + fout * fout * 4 * 9 + 2 * fout + fout * fout * 4 * 9  # block 2
    n += 2 * f[-1] + f[-1] * TEN_CLASSES + TEN_CLASSES  # final norm, head
    assert parameters("e2_resnet18", 8) == n


def test_e2_wrn22_parameters_by_hand():
    # Their e2cnn Wide_ResNet(depth 22, widen k): a 16-plane stem, then 3 stages of 3 blocks over
    # 16k, 32k, 64k planes (strides 1, 2, 2). Under D2 a stage of p planes has p / 2 regular fields.
    def by_hand(k):
        f = [8, 8 * k, 16 * k, 32 * k]
        n = f[0] * 3 * 25  # the 5x5 lifting conv
        for stage in range(3):
            fin, fout = f[stage], f[stage + 1]
            n += 2 * fin + fout * fin * 4 * 9 + 2 * fout + fout * fout * 4 * 9  # block 1: bn1, conv1, bn2, conv2
            n += fout * fin * 4 if stage > 0 or fin != fout else 0  # its 1x1 shortcut (stride 2, or more fields)
            n += 2 * (2 * fout + fout * fout * 4 * 9 + 2 * fout + fout * fout * 4 * 9)  # blocks 2 and 3
        return n + 2 * f[-1] + f[-1] * TEN_CLASSES + TEN_CLASSES  # final norm, head

    assert parameters("e2_wrn22", 1) == by_hand(1)
    assert parameters("e2_wrn22", 4) == by_hand(4) == 4_295_154  # the paper's k = 4; a plain WRN-22-4 has ~4.3 M


def test_paper_resnet18_options_change_the_network_as_the_paper_does():
    torch.manual_seed(0)
    model = build_model("resnet18", 4, (3, 32, 32), TEN_CLASSES, downsample="C", init="paper")
    shortcut = model.encoder[5].shortcut  # first block of stage 2: halves the resolution
    assert isinstance(shortcut[0], torch.nn.AvgPool2d) and shortcut[1].stride == (1, 1)
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)  # every residual branch starts at zero
    # Kaiming normal over fan_out: std sqrt(2 / (out_channels * 9)) for a 3x3 conv; stage 4 has 32 * 32 * 9 weights.
    conv = blocks[-1].conv1.weight
    assert abs(conv.std().item() - (2 / (32 * 9)) ** 0.5) < 0.1 * (2 / (32 * 9)) ** 0.5
    # With zeroed branches, the stem and the shortcuts alone compute the features: a block with an
    # identity shortcut passes its input through (ReLU of a non-negative input).
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    stem_out = model.encoder[:3](x)
    assert torch.allclose(model.encoder[3](stem_out), stem_out)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name, width, feature_dim", [
    ("vgg13", 4, 32), ("pyramidnet110", 8, 24), ("convmixer", 16, 16), ("swin", 8, 16),
    ("flip_invariant_resnet18", 4, 32), ("orbit_resnet18", 4, 32), ("e2_resnet18", 4, 16),
    ("e2_wrn22", 1, 32),
])
def test_forward_logits_and_features(images, name, width, feature_dim):
    model = build_model(name, width, (3, 32, 32), TEN_CLASSES)
    logits = model(images)
    assert logits.shape == (2, TEN_CLASSES) and torch.isfinite(logits).all()
    assert model.features(images).shape == (2, feature_dim)
    assert torch.allclose(model.head(model.features(images)), logits, atol=1e-6)


def transforms(x):
    return {"mirror": x.flip(3), "vertical mirror": x.flip(2), "rotate 180": x.rot90(2, (2, 3)),
            "rotate 90": x.rot90(1, (2, 3))}


@pytest.mark.parametrize("group, invariant_to", [
    ("d2", ("mirror", "vertical mirror", "rotate 180")),
    ("d4", ("mirror", "vertical mirror", "rotate 180", "rotate 90")),
])
@pytest.mark.parametrize("name, width", [("e2_resnet18", 4), ("e2_wrn22", 1)])
def test_e2_models_logits_are_invariant(images, name, width, group, invariant_to):
    torch.manual_seed(0)
    model = build_model(name, width, (3, 32, 32), TEN_CLASSES, group=group).double().eval()
    x = images.double()
    logits = model(x)
    changed = {name: (model(t) - logits).abs().max().item() for name, t in transforms(x).items()}
    for name in invariant_to:
        assert changed[name] < 1e-9, (name, changed)
    if group == "d2":  # not a symmetry of D2: the test would notice a model that ignores the image
        assert changed["rotate 90"] > 1e-4


@pytest.mark.parametrize("name", ["flip_invariant_resnet18", "orbit_resnet18"])
def test_flip_invariant_models(images, name):
    torch.manual_seed(0)
    model = build_model(name, 4, (3, 32, 32), TEN_CLASSES).double().eval()
    x = images.double()
    assert torch.allclose(model(x), model(x.flip(3)), atol=1e-12)
    assert not torch.allclose(model(x), model(x.flip(2)), atol=1e-6)  # a vertical flip is not a symmetry


# --- model options in the study: run ids, validation ---

def test_run_ids_of_studies_without_model_options_are_unchanged(tiny_study):
    from dataworth.study import load_study

    # The id main gave this run before models had options (study from studies/digits.yaml, resnet18 width 4).
    raw = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
    raw["grid"].update(n_train=[100], augmentation=["none"], model=[{"name": "resnet18", "width": 4}], seed=[0])
    run = load_study(raw).runs[0]
    assert run["run_id"] == "96a500dc4ee5" and run["model"] == {"name": "resnet18", "width": 4}
    raw["grid"]["model"] = [{"name": "resnet18", "width": 4, "downsample": "C", "init": "paper"}]
    paper = load_study(raw).runs[0]
    assert paper["run_id"] != "96a500dc4ee5" and paper["model"]["downsample"] == "C"


def test_an_option_of_another_model_is_refused(tiny_study):
    from dataworth.study import StudyError, load_study

    raw = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
    raw["grid"]["model"] = [{"name": "vgg13", "width": 8, "downsample": "C"}]
    with pytest.raises(StudyError) as err:
        load_study(raw)
    assert any("grid.model[0]" in p and "downsample is an option of" in p and "allowed for vgg13: no options" in p
               for p in err.value.problems), err.value.problems


def test_swin_refuses_images_its_windows_do_not_tile():
    from dataworth.models import input_problem

    assert input_problem("swin", (3, 32, 32)) is None
    assert "divide" in input_problem("swin", (3, 36, 36))  # 18 tokens a side: not a multiple of the window 4
    assert "square" in input_problem("swin", (3, 32, 16))
