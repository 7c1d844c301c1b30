"""Export to torchvision: only torchvision classes, any input type, pickles, runs in DataLoader
workers without autoaug, readable source rebuilding the same object, same distribution."""

import math
import pickle
import subprocess
import sys
import textwrap
from collections import Counter
from functools import partial

import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from autoaug.export import export, to_torchvision
from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, PolicyError, load_policy


def _rgb_image(h=32, w=32, seed=0):
    """A smooth but non-symmetric RGB image: most ops at most magnitudes change it differently."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx * 0.8 + 0.1, yy**2, (torch.sin(xx * 7 + yy * 3) + 1) / 2])
    noise = torch.rand(3, h, w, generator=g) * 0.15
    return ((base + noise).clamp(0, 1) * 255).round() / 255


def _walk(t):
    yield t
    for child in getattr(t, "transforms", []) or []:
        yield from _walk(child)


@pytest.mark.parametrize("name", ["none", "randaugment", "trivialaugment", "autoaugment_cifar10"])
def test_export_is_only_torchvision(name):
    t = to_torchvision(load_policy(name), image_size=(32, 32))
    for node in _walk(t):
        assert type(node).__module__.startswith("torchvision."), type(node)
        if isinstance(node, v2.Lambda):
            assert isinstance(node.lambd, partial)
            assert node.lambd.func.__module__.startswith("torchvision."), node.lambd.func


def test_export_takes_pil_uint8_and_float():
    t = to_torchvision(load_policy("trivialaugment"))
    img = _rgb_image()
    u8 = (img * 255).round().to(torch.uint8)
    pil = Image.fromarray(u8.permute(1, 2, 0).numpy())
    gray = Image.fromarray(u8[0].numpy())
    outs = []
    for inp in (pil, u8, img, gray):
        torch.manual_seed(5)
        out = t(inp)
        assert isinstance(out, tv_tensors.Image) and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        outs.append(out)
    assert torch.allclose(outs[0], outs[1]) and torch.allclose(outs[1], outs[2], atol=1e-6)
    assert outs[3].shape == (1, 32, 32)


def test_export_pickles_and_source_rebuilds_the_same_object(tmp_path):
    policy = load_policy("autoaugment_cifar10")
    t = to_torchvision(policy, image_size=(32, 32))
    clone = pickle.loads(pickle.dumps(t))
    src_path = export(policy, tmp_path / "aa.py", image_size=(32, 32))
    namespace: dict = {}
    exec(compile(src_path.read_text(), str(src_path), "exec"), namespace)
    rebuilt = namespace["transform"]
    assert "import autoaug" not in src_path.read_text()
    img = _rgb_image()
    for seed in range(20):
        results = []
        for transform in (t, clone, rebuilt):
            torch.manual_seed(seed)
            results.append(transform(img))
        assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2]), seed
    assert repr(rebuilt) == repr(t)


def test_export_pt_and_bad_targets(tmp_path):
    path = export(load_policy("trivialaugment"), tmp_path / "ta.pt")
    loaded = torch.load(path, weights_only=False)  # our own file, written just now
    assert isinstance(loaded, v2.Compose)
    with pytest.raises(ValueError, match=r"must end in \.py or \.pt"):
        export(load_policy("trivialaugment"), tmp_path / "ta.json")
    with pytest.raises(PolicyError, match="image size"):
        to_torchvision(load_policy("randaugment"))


def test_dataloader_workers_need_no_autoaug(tmp_path):
    """A process where autoaug cannot be imported unpickles the export and runs it in two
    DataLoader workers."""
    export(load_policy("trivialaugment"), tmp_path / "policy.pt")
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "autoaug.py").write_text("raise ImportError('autoaug must not be needed')\n")
    (tmp_path / "probe_data.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            import torch
            from PIL import Image

            class Images(torch.utils.data.Dataset):
                def __init__(self, transform):
                    self.transform = transform
                def __len__(self):
                    return 16
                def __getitem__(self, i):
                    rng = np.random.default_rng(i)
                    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
                    return self.transform(img)
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import sys
        import torch
        from probe_data import Images
        transform = torch.load({str(tmp_path / "policy.pt")!r}, weights_only=False)
        loader = torch.utils.data.DataLoader(Images(transform), batch_size=4, num_workers=2)
        batches = list(loader)
        assert len(batches) == 4 and batches[0].shape == (4, 3, 32, 32), [b.shape for b in batches]
        assert "autoaug" not in sys.modules
        print("ok")
        """
    )
    env = {"PYTHONPATH": f"{tmp_path / 'blocker'}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


# ------------------------------------------------------- the export draws what the policy draws


def _candidates(policy: Policy, img: torch.Tensor):
    """Every distinct output one stage of ``policy`` can produce from ``img``, with a label."""
    outs, labels = [img.clone()], [("not applied", 0.0)]
    stage = policy.stages[0]
    for k, e in enumerate(stage):
        op = get_op(e.op)
        signs = (1.0, -1.0) if op.signed else (1.0,)
        for m in e.magnitudes if op.has_magnitude else (0.0,):
            for sign in signs:
                v = policy.values(0, k, torch.tensor([m]), torch.tensor([sign]), *img.shape[-2:])
                outs.append(op(img[None], v, interpolation=policy.interpolation)[0])
                labels.append((e.op, round(float(v), 3)))
    table = torch.stack(outs).flatten(1)
    # Outputs that coincide (rotate by 0, identity, ...) are one class.
    classes: list[int] = []
    for i in range(len(table)):
        same = [j for j in range(i) if torch.equal(table[i], table[j])]
        classes.append(classes[same[0]] if same else i)
    return table, classes, labels


def _distance(samples: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    # cdist's matrix-product shortcut is off by ~1e-2 in float32 at this size; float64 is exact enough.
    return torch.cdist(samples.flatten(1).double(), table.double())


def _classify(samples: torch.Tensor, table: torch.Tensor, classes: list[int]) -> Counter:
    distance = _distance(samples, table)
    return Counter(classes[j] for j in distance.argmin(1).tolist())


def _chi_square_ok(a: Counter, b: Counter) -> tuple[bool, str]:
    keys = [k for k in set(a) | set(b) if a[k] + b[k] > 0]
    stat = sum((a[k] - b[k]) ** 2 / (a[k] + b[k]) for k in keys)
    dof = max(len(keys) - 1, 1)
    return stat < dof + 5 * math.sqrt(2 * dof), f"chi-square {stat:.1f} with {dof} degrees of freedom"


@pytest.mark.parametrize(
    "policy",
    [
        Policy.uniform("wide", bins=11, name="trivial_11"),
        Policy(
            [
                [
                    OpEntry("rotate", 3.0, 0.8, (0.2, 0.6, 1.0), (1.0, 2.0, 5.0)),
                    OpEntry("brightness", 1.0, 0.5, (0.5,), (1.0,)),
                    OpEntry("hflip", 2.0, 0.9),
                    OpEntry("posterize", 1.0, 1.0, (0.0, 0.5, 1.0), (1.0, 0.0, 1.0)),
                    OpEntry("equalize", 0.5, 1.0),
                ]
            ],
            space="symmetry",
            name="skewed",
        ),
    ],
    ids=["trivial_11", "skewed"],
)
def test_export_draws_the_same_ops_and_magnitudes(policy):
    n = 4000
    img = _rgb_image()
    table, classes, labels = _candidates(policy, img)
    t = to_torchvision(policy, image_size=(32, 32))
    torch.manual_seed(0)
    exported = torch.stack([t(img) for _ in range(n)])
    ours = policy.apply(img.expand(n, -1, -1, -1).contiguous(), generator=torch.Generator().manual_seed(1))
    a, b = _classify(exported, table, classes), _classify(ours, table, classes)
    ok, why = _chi_square_ok(a, b)
    assert ok, f"{why}; export {sorted(a.items())[:10]} vs policy {sorted(b.items())[:10]}"
    # The outputs are the candidates themselves, not merely near them.
    nearest = _distance(exported, table).min(1).values
    assert (nearest < 1e-3).float().mean() > 0.97
    # And the test can fail: a policy with other weights is told apart.
    other = Policy([[OpEntry(e.op, 1.0 if i else 5.0, e.prob, e.magnitudes, e.probs) for i, e in enumerate(policy.stages[0])]],
                   space=policy.space)  # fmt: skip
    wrong = other.apply(img.expand(n, -1, -1, -1).contiguous(), generator=torch.Generator().manual_seed(2))
    assert not _chi_square_ok(a, _classify(wrong, table, classes))[0]
    del labels
