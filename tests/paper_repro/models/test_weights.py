"""load_pretrained: wrappers, prefixes and fc dropped; reports; clear errors that leave the model untouched."""

from __future__ import annotations

import pytest
import torch

from paper_repro.models import EmbeddingNet, load_pretrained, make_model, resnet18


def _torchvision_style_checkpoint(seed: int = 1, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """A resnet18 state_dict as DataParallel + torchvision would save it: prefixed names and a 1000-class fc."""
    torch.manual_seed(seed)
    sd = {prefix + k: v.clone() for k, v in resnet18().state_dict().items()}
    for k, v in sd.items():  # non-default BN buffers, so copying them is checked too
        if k.endswith(("running_mean", "running_var")):
            v.uniform_(0.1, 1.0)
    sd[prefix + "fc.weight"] = torch.randn(1000, 512)
    sd[prefix + "fc.bias"] = torch.randn(1000)
    return sd


def _assert_same(model_sd, ckpt, prefix="module."):
    for k, v in model_sd.items():
        torch.testing.assert_close(v, ckpt[prefix + k], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "nested"])
def test_loads_every_tensor_and_reports(tmp_path, wrap):
    ckpt = _torchvision_style_checkpoint()
    obj = {
        "raw": ckpt,
        "state_dict": {"state_dict": ckpt, "epoch": 90},
        "model": {"model": ckpt, "optimizer": {}},
        "nested": {"model": {"state_dict": ckpt}},
    }[wrap]
    path = tmp_path / "r18.pth"
    torch.save(obj, path)
    torch.manual_seed(2)
    model = resnet18()
    report = load_pretrained(model, path)
    _assert_same(model.state_dict(), ckpt)
    assert report.dropped == ("fc.weight", "fc.bias")
    assert report.missing == () and report.unexpected == () and report.skipped == ()
    assert report.complete and len(report.loaded) == len(model.state_dict()) == 120
    assert report.target == "model" and report.path == str(path)
    assert "120 loaded" in str(report)


@pytest.mark.slow
def test_backbone_checkpoint_goes_into_embedding_net_backbone(tmp_path):
    ckpt = _torchvision_style_checkpoint(prefix="_orig_mod.module.")
    torch.save(ckpt, tmp_path / "r18.pt")
    net = EmbeddingNet(resnet18(), dim=8)
    head_before = net.head.weight.detach().clone()
    report = load_pretrained(net, tmp_path / "r18.pt")
    assert report.target == "model.backbone"
    _assert_same(net.backbone.state_dict(), ckpt, prefix="_orig_mod.module.")
    torch.testing.assert_close(net.head.weight.detach(), head_before, rtol=0, atol=0)


def test_full_embedding_net_round_trip(tmp_path):
    torch.manual_seed(0)
    src = make_model("small_cnn", in_channels=1, dim=8)
    torch.save({"model": src.state_dict(), "step": 10}, tmp_path / "ckpt.pt")
    torch.manual_seed(1)
    dst = make_model("small_cnn", in_channels=1, dim=8)
    report = load_pretrained(dst, tmp_path / "ckpt.pt", strict=True)
    assert report.target == "model" and report.complete
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(dst.eval()(x), src.eval()(x), rtol=0, atol=0)


def test_make_model_pretrained_loads_the_backbone(tmp_path):
    ckpt = _torchvision_style_checkpoint()
    torch.save(ckpt, tmp_path / "r18.pth")
    net = make_model("resnet18", in_channels=3, dim=16, pretrained=tmp_path / "r18.pth")
    _assert_same(net.backbone.state_dict(), ckpt)


def test_shape_mismatch_is_a_clear_error_and_loses_nothing(tmp_path):
    torch.save(_torchvision_style_checkpoint(), tmp_path / "r18.pth")
    model = resnet18(small_input=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    msg = r"1 tensor\(s\) do not fit model: conv1.weight: file \(64, 3, 7, 7\) vs model \(64, 3, 3, 3\)"
    with pytest.raises(ValueError, match=msg):
        load_pretrained(model, tmp_path / "r18.pth")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="skip_mismatched=True"):
        make_model("resnet18", in_channels=3, small_input=True, pretrained=tmp_path / "r18.pth")
    report = load_pretrained(model, tmp_path / "r18.pth", skip_mismatched=True)
    assert report.skipped == (("conv1.weight", (64, 3, 7, 7), (64, 3, 3, 3)),) and not report.complete
    torch.testing.assert_close(model.conv1.weight, before["conv1.weight"], rtol=0, atol=0)
    assert not torch.equal(model.bn1.running_var, before["bn1.running_var"])


def test_missing_and_unexpected_names_strict_and_not(tmp_path):
    ckpt = _torchvision_style_checkpoint(prefix="")
    del ckpt["layer4.1.bn2.running_var"]
    ckpt["extra.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"strict=True.*missing layer4.1.bn2.running_var; unexpected extra.weight"):
        load_pretrained(resnet18(), tmp_path / "partial.pth", strict=True)
    report = load_pretrained(resnet18(), tmp_path / "partial.pth")
    assert report.missing == ("layer4.1.bn2.running_var",) and report.unexpected == ("extra.weight",)
    with pytest.warns(UserWarning, match="partial pretrained load"):
        make_model("resnet18", in_channels=3, pretrained=tmp_path / "partial.pth")


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "no_such_weights.pth"
    with pytest.raises(FileNotFoundError, match="no_such_weights.pth"):
        load_pretrained(resnet18(), path)
    with pytest.raises(FileNotFoundError, match="directory"):
        load_pretrained(resnet18(), tmp_path)


def test_unreadable_or_foreign_files(tmp_path):
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"could not read .*junk.pth as a torch checkpoint"):
        load_pretrained(resnet18(), tmp_path / "junk.pth")
    torch.save({"conv1.weight": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pth")
    with pytest.raises(TypeError, match="not name -> tensor: note"):
        load_pretrained(resnet18(), tmp_path / "mixed.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(TypeError, match="holds a list"):
        load_pretrained(resnet18(), tmp_path / "list.pth")
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor fits model"):
        load_pretrained(resnet18(), tmp_path / "other.pth")
    torch.save({"module.a": torch.zeros(1), "a": torch.zeros(1)}, tmp_path / "dup.pth")
    with pytest.raises(ValueError, match="two entries become 'a'"):
        load_pretrained(resnet18(), tmp_path / "dup.pth")
