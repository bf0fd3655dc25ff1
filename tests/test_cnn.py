"""CNN family: the from-scratch convolution and pooling equal torch's (outputs and gradients, float64), the planned
shapes equal the real ones, bad sizes fail in one line, and smoke runs of every CNN config."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlf.errors import DlfError
from dlf.nets import conv_scratch as cs
from dlf.nets.cnn import build_cnn

torch.set_default_dtype(torch.float32)
TOL = dict(rtol=1e-10, atol=1e-10)


def test_course_example_feature_map():
    """The course's 3x3 input and 2x2 kernel: slide, multiply element-wise, sum (valid padding, stride 1)."""
    x = torch.tensor([[0.0, 13, 13], [7, 7, 7], [9, 11, 11]]).view(1, 1, 3, 3)
    w = torch.tensor([[0.0, 1], [1, 0]]).view(1, 1, 2, 2)
    y = cs.conv2d(x, w)
    assert y.tolist() == [[[[20.0, 20.0], [16.0, 18.0]]]]
    assert torch.equal(y, F.conv2d(x, w))
    # zero padding: the kernel also fits at the right and bottom border (output 3x3 = ceil(3 / 1))
    assert cs.zero_pads(3, 2, 1) == (0, 1)
    yz = cs.conv2d(x, w, pads=(0, 1, 0, 1))
    assert yz[0, 0].tolist() == [[20.0, 20.0, 7], [16, 18, 11], [11, 11, 0]]


def _grads(y, inputs, g):
    return torch.autograd.grad(y, inputs, g)


CONV_CASES = [  # (H, W, kernel, stride, padding as (top, bottom, left, right))
    (h, w, k, s, p) for (h, w), k, s, p in itertools.product(
        [(5, 5), (7, 6)], [(1, 1), (2, 2), (3, 3), (3, 2)], [(1, 1), (2, 2), (2, 1), (3, 3)],
        ["valid", "zero", (1, 1, 1, 1), (0, 1, 2, 0)])
]


@pytest.mark.parametrize("h,w,k,s,p", CONV_CASES)
def test_conv2d_matches_torch(h, w, k, s, p):
    torch.manual_seed(0)
    pads = (0, 0, 0, 0) if p == "valid" else (*cs.zero_pads(h, k[0], s[0]), *cs.zero_pads(w, k[1], s[1])) \
        if p == "zero" else p
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(4, 3, *k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    conv = nn.Conv2d(3, 4, k, stride=s).double()
    with torch.no_grad():
        conv.weight.copy_(wt)
        conv.bias.copy_(b)
    y = cs.conv2d(x, wt, b, s, pads)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = conv(F.pad(x2, (pads[2], pads[3], pads[0], pads[1])))
    torch.testing.assert_close(y, y2, **TOL)
    g = torch.randn_like(y)
    gx, gw, gb = _grads(y, (x, wt, b), g)
    gx2, gw2, gb2 = _grads(y2, (x2, conv.weight, conv.bias), g)
    for a, c in ((gx, gx2), (gw, gw2), (gb, gb2)):
        torch.testing.assert_close(a, c, **TOL)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k,s", [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 2), (2, 1)), ((2, 2), (3, 3)), ((1, 1), (1, 1))])
def test_pool2d_matches_torch(kind, k, s):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, requires_grad=True)
    mine = (cs.max_pool2d if kind == "max" else cs.avg_pool2d)(x, k, s)
    ref = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, s)(x)
    torch.testing.assert_close(mine, ref, **TOL)
    g = torch.randn_like(ref)
    torch.testing.assert_close(_grads(mine, (x,), g)[0], _grads(ref, (x,), g)[0], **TOL)


@pytest.mark.parametrize("k,s,pads", [(5, 2, (1, 1)), (3, 1, (0, 0)), (4, 3, (1, 2)), (1, 1, (0, 0))])
def test_1d_ops_match_torch(k, s, pads):
    torch.manual_seed(2)
    x = torch.randn(3, 2, 11, dtype=torch.float64, requires_grad=True)
    conv = nn.Conv1d(2, 5, k, stride=s).double()
    y = cs.conv1d(x, conv.weight, conv.bias, s, pads)
    ref = conv(F.pad(x, pads))
    torch.testing.assert_close(y, ref, **TOL)
    g = torch.randn_like(y)
    for a, c in zip(_grads(y, (x, conv.weight, conv.bias), g), _grads(ref, (x, conv.weight, conv.bias), g)):
        torch.testing.assert_close(a, c, **TOL)
    for mine, layer in ((cs.max_pool1d, nn.MaxPool1d), (cs.avg_pool1d, nn.AvgPool1d)):
        out, r = mine(x, 2, 2), layer(2, 2)(x)
        torch.testing.assert_close(out, r, **TOL)
        g = torch.randn_like(r)
        torch.testing.assert_close(_grads(out, (x,), g)[0], _grads(r, (x,), g)[0], **TOL)


BLOCKS_2D = [dict(filters=4, kernel=3, padding="zero", pool="max"),
             dict(filters=6, kernel=[2, 3], stride=[1, 2], padding="valid", activation="tanh", pool="avg",
                  pool_size=2, pool_stride=1),
             dict(filters=5, kernel=2, stride=2, padding="zero", activation="sigmoid")]
BLOCKS_1D = [dict(filters=5, kernel=5, stride=2, padding=1), dict(filters=4, kernel=2, padding="zero", pool="max"),
             dict(filters=3, kernel=3, stride=2, padding="valid", pool="avg", pool_size=2)]


@pytest.mark.parametrize("dims,in_shape,blocks", [(2, (2, 12, 11), BLOCKS_2D), (1, (1, 40), BLOCKS_1D)])
def test_scratch_net_equals_torch_net(dims, in_shape, blocks):
    """Whole nets: same state_dict, same logits and parameter gradients; the summary's shapes are the real ones."""
    torch.manual_seed(3)
    tnet = build_cnn(in_shape, 7, "torch", dims=dims, blocks=blocks, hidden=[9]).double()
    snet = build_cnn(in_shape, 7, "scratch", dims=dims, blocks=blocks, hidden=[9]).double()
    snet.load_state_dict(tnet.state_dict())
    x = torch.randn(4, *in_shape, dtype=torch.float64)
    yt, ys = tnet(x), snet(x)
    torch.testing.assert_close(ys, yt, **TOL)
    yt.square().sum().backward()
    ys.square().sum().backward()
    for (n, pt), (_, ps) in zip(tnet.named_parameters(), snet.named_parameters()):
        torch.testing.assert_close(ps.grad, pt.grad, **TOL, msg=n)
    h = x
    for sp, blk in zip(tnet.specs, tnet.blocks):
        h = blk(h)
        planned = sp["pool_out"] if sp["pool"] else sp["conv_out"]
        assert tuple(h.shape[1:]) == ((planned[0], planned[2]) if dims == 1 else planned)
    table = tnet.summary()
    assert "blocks.0.conv" in table and "head.flatten" in table


@pytest.mark.parametrize("in_shape,blocks,words", [
    ((1, 8, 8), [dict(filters=4, kernel=9, padding="valid")], ["blocks[0]", "kernel 9x9", "input 8x8"]),
    ((1, 8, 8), [dict(filters=4, pool="max"), dict(filters=4, pool="max"), dict(filters=4, pool="max"),
                 dict(filters=4, kernel=3, padding="valid")], ["blocks[3]", "kernel 3x3", "input 1x1"]),
    ((1, 8, 8), [dict(filters=4, stride=0)], ["blocks[0].stride=0", "no output"]),
    ((1, 4, 4), [dict(filters=4, pool="max", pool_size=5)], ["blocks[0]", "window 5x5", "input 4x4"]),
    ((1, 8, 8), [dict(filters=4, padding="same")], ["blocks[0].padding='same'"]),
    ((1, 8, 8), [dict(filters=4), dict(filters=4, norm="layer")], ["blocks[1].norm='layer'", "batch"]),
])
def test_bad_sizes_fail_in_one_line(in_shape, blocks, words):
    with pytest.raises(DlfError) as e:
        build_cnn(in_shape, 10, blocks=blocks)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("dims,in_shape", [(2, (1, 8, 8)), (1, (2, 12))])
def test_batch_norm_block(dims, in_shape):
    """norm: batch puts batch norm between the conv and the activation: in training mode each feature map leaves it
    with mean 0 and std 1 over the batch (and positions), its running statistics are in the state_dict, the summary
    names it; norm: none (the default) builds no norm layer and leaves the parameter names unchanged."""
    torch.manual_seed(0)
    blocks = [dict(filters=5, norm="batch", pool="max"), dict(filters=3)]
    net = build_cnn(in_shape, 4, dims=dims, blocks=blocks, hidden=[6]).train()
    x = torch.randn(16, *in_shape) * 3 + 2
    z = net.blocks[0].norm(net.blocks[0].conv(x))
    axes = (0, 2) if dims == 1 else (0, 2, 3)
    torch.testing.assert_close(z.mean(axes), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(axes, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    assert "blocks.0.norm.running_mean" in net.state_dict() and "blocks.1.norm.running_mean" not in net.state_dict()
    assert "blocks.0.norm" in net.summary() and "blocks.1.norm" not in net.summary()
    assert net(x).shape == (16, 4) and len(net.features(x)) == 2
    plain = build_cnn(in_shape, 4, dims=dims, blocks=[dict(filters=5, pool="max"), dict(filters=3, norm="none")])
    assert not any(".norm." in k for k in plain.state_dict())


def test_scratch_refuses_batch_norm():
    with pytest.raises(DlfError) as e:
        build_cnn((1, 8, 8), 10, "scratch", blocks=[dict(filters=4), dict(filters=4, norm="batch")])
    msg = str(e.value)
    assert "\n" not in msg and "blocks[1]" in msg and "impl=scratch" in msg and "norm" in msg, msg


def test_flip_mirrors_a_random_half(make_cfg, tmp_path):
    """model.augment_flip: each training image is either itself or its left-right mirror, both occur."""
    from dlf.systems.cnn import CNNSystem

    sys_ = CNNSystem.__new__(CNNSystem)
    torch.manual_seed(0)
    x = torch.arange(64 * 2 * 3 * 4, dtype=torch.float32).view(64, 2, 3, 4)
    y = CNNSystem.flip(sys_, x)
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 16 < int(mirrored.sum()) < 48


@pytest.mark.parametrize("args,words", [
    (["model=cnn", "model.net.impl=scratch", "model.net.blocks.0.norm=batch"], ["blocks[0]", "impl=scratch", "norm"]),
    (["model=cnn1d", "+model.augment_flip=true"], ["augment_flip", "data=mnist1d"]),
])
def test_cli_norm_and_flip_refusals_one_line(args, words, tmp_path, run_cli, root):
    r = run_cli([*args, "debug=fast"], cwd=tmp_path, timeout=120, env={"PYTHONPATH": str(root / "src")})
    assert r.returncode != 0
    err = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("dlf: error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for w in words:
        assert w in err[0], err[0]


@pytest.mark.parametrize("overrides", [
    ["model=cnn"], ["model=cnn", "model.net.impl=scratch"], ["model=cnn", "optimizer=sgd"],
    ["model=cnn1d"], ["model=cnn1d", "model.net.impl=scratch", "optimizer=rmsprop"], ["experiment=cnn1d_mnist1d"],
    ["model=cnn", "model.augment_flip=true", "model.net.blocks.1.norm=batch"],
])
def test_smoke_runs(overrides, tmp_path, make_cfg):
    from dlf.run.train import run

    cfg = make_cfg(overrides, tmp_path)
    m = run(cfg)
    assert 0.0 <= m["test/acc"] <= 1.0 and m["test/loss"] > 0
    assert (tmp_path / "plots" / "kernels_block0.png").exists()
    assert (tmp_path / "plots" / "feature_maps_block1.png").exists()
    assert (tmp_path / "plots" / "confusion_test.png").exists()


@pytest.mark.parametrize("args,words", [
    (["model=cnn", "data=mnist1d"], ["2-D CNN", "data=mnist1d"]),
    (["model=cnn1d", "data=digits"], ["1-D CNN", "data=digits"]),
    (["model=cnn", "data=xor"], ["CNNSystem", "data=xor"]),
    (["model=cnn1d", "data=xor"], ["CNNSystem", "data=xor"]),  # cnn1d sets no data.* key that xor would reject
])
def test_model_data_mismatch(args, words, tmp_path, make_cfg):
    from dlf.run.train import run

    with pytest.raises(DlfError) as e:
        run(make_cfg(args, tmp_path))
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_cli_bad_kernel_one_line(tmp_path, run_cli, root):

    # the worktree's own package, also when an editable install of another checkout is on the path
    args = ["model=cnn", "model.net.blocks.0.kernel=11", "model.net.blocks.0.padding=valid", "debug=fast"]
    r = run_cli(args, cwd=tmp_path, timeout=120, env={"PYTHONPATH": str(root / "src")})
    assert r.returncode != 0
    err = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("dlf: error:")]
    assert len(err) == 1, r.stderr[-2000:]
    assert "blocks[0]" in err[0] and "kernel 11x11" in err[0] and "input 8x8" in err[0], err[0]
