"""The symmetry suite (autoaug.data.suite): its coverage of the symmetry space, its listing, and
its declared ground truth checked by construction where that is cheap: the op applied by
autoaug's own kernels either lands an image exactly (or nearly) on a redrawn image of another
class, or keeps the attribute that defines the class inside the class's own range."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from autoaug.data import list_datasets, load_dataset
from autoaug.data import suite as S
from autoaug.data.base import make_generator
from autoaug.ops import get_op
from autoaug.spaces import SYMMETRY

GRID = (0.25, 0.5, 0.75, 1.0)  # the analysis grid: invariance_profile's 4 levels per sign


def apply(op: str, images: torch.Tensor, m: float, aux: torch.Tensor | None = None) -> torch.Tensor:
    """``op`` at signed magnitude ``m`` on uint8 images, as the invariance profile applies it."""
    x = images.float() / 255
    r = SYMMETRY.ranges.get(op)
    v = 0.0 if r is None else r.value(abs(m), *x.shape[-2:]) * math.copysign(1, m)
    return get_op(op)(x, x.new_full((len(x),), v), aux)


def _central(a: torch.Tensor, b: torch.Tensor, radius: float = 13.0) -> float:
    """Mean absolute difference (0-255) inside a centred disc: warps fill the corners with black."""
    c = torch.arange(S.W) - (S.W - 1) / 2
    mask = (c.view(-1, 1) ** 2 + c.view(1, -1) ** 2) <= radius**2
    return (a.float() - b.float()).abs()[..., mask].mean().item()


def scenes(name: str, n: int = 64, seed: int = 0) -> tuple[S.SceneParams, torch.Tensor]:
    p = S.sample_scenes(name, n, make_generator(seed, f"test/{name}"))
    return p, S.render_scenes(p)


def replace(p: S.SceneParams, **kw) -> S.SceneParams:
    return S.SceneParams(**{f: kw.get(f, getattr(p, f)) for f in p.__dataclass_fields__})


# ----------------------------------------------------------------------------- structure


def test_every_op_keeps_the_label_somewhere_and_changes_it_elsewhere():
    cov = S.coverage()
    for op in SYMMETRY.ops:
        if op == "identity":
            continue
        assert cov.get(op, {}).get("keeps") and cov[op]["breaks"], (op, cov.get(op))
    assert set(cov) <= set(SYMMETRY.ops)
    magnitude_dependent = [op for t in S.SUITE.values() for op, v in t.truth.items() if v == "partial"]
    assert len(magnitude_dependent) >= 10


def test_truth_is_well_formed_and_the_halves_split_the_suite():
    assert set(S.CALIBRATION) | set(S.HELD_OUT) == set(S.SUITE)
    assert not set(S.CALIBRATION) & set(S.HELD_OUT) and len(S.CALIBRATION) == len(S.HELD_OUT)
    for t in S.SUITE.values():
        assert set(t.truth.values()) <= {"symmetry", "breaks", "partial"}, t.name
        partial = {op for op, v in t.truth.items() if v == "partial"}
        assert set(t.safe) == partial, t.name
        for lo, hi in t.safe.values():
            assert lo in GRID and hi in GRID and lo <= hi < 1.0


def test_the_suite_is_listed_and_loads_with_its_truth():
    listed = {i.name: i for i in list_datasets()}
    for name, t in S.SUITE.items():
        assert listed[name].available, name
        ds = load_dataset(name, train_size=60, seed=1)
        assert ds.ground_truth == t.truth and ds.class_names == list(t.classes)
        assert ds.train.labels.bincount().min() > 0 and ds.test.images.dtype == torch.uint8
    again = load_dataset("quadrants", train_size=60, seed=1)
    assert torch.equal(again.train.images, load_dataset("quadrants", train_size=60, seed=1).train.images)
    assert not torch.equal(again.train.images, load_dataset("quadrants", train_size=60, seed=2).train.images)


def test_unknown_scene_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown scene task 'nope'.*quadrants"):
        S.sample_scenes("nope", 4, torch.Generator())


# ------------------------------------------------------------------ exact relabellings


def test_flips_and_quarter_turns_redraw_images_of_other_classes():
    # quadrants: a flip mirrors the offset; shears: it negates the shear; a quarter turn of a
    # square sheared along x is the square sheared along y.
    p, img = scenes("quadrants")
    mirrored = replace(p, offset=p.offset * torch.tensor([-1.0, 1.0]))
    assert (apply("hflip", img, 1.0) * 255 - S.render_scenes(mirrored).float()).abs().max() <= 1
    p, img = scenes("shears")
    f = torch.diag(torch.tensor([-1.0, 1.0]))
    flipped = S.render_scenes(
        replace(p, linear=f @ p.linear @ f, offset=p.offset * torch.tensor([-1.0, 1.0]))
    )
    err = (apply("hflip", img, 1.0) * 255 - flipped.float()).abs().max().item()
    assert err <= 1
    upright = p.labels == 0
    x_lean = (p.labels == 1) | (p.labels == 2)
    assert upright.any() and x_lean.any()
    lin = p.linear[x_lean]
    assert (
        torch.allclose(lin[:, 1, 0], torch.zeros(len(lin)))
        and (lin[:, 0, 1].abs() > 0.2 * lin[:, 0, 0]).all()
    )


def test_invert_swaps_polarity_exactly():
    p, img = scenes("polarity")
    inv = replace(p, fg=1 - p.fg, bg=1 - p.bg)
    assert (apply("invert", img, 1.0) * 255 - S.render_scenes(inv).float()).abs().max() <= 1
    light, dark = S.LIGHT, S.DARK
    assert ((1 - p.bg[:, 0] >= light[0]) == (p.labels == 0)).all()  # dark backgrounds turn light
    assert dark == pytest.approx((1 - light[1], 1 - light[0]))


# ------------------------------------------------------- magnitude-dependent changes


def _radius(images: torch.Tensor) -> torch.Tensor:
    """A disc's radius in pixels from its area (white on black)."""
    return torch.sqrt(images.float().mean(1).flatten(1).sum(1) / math.pi)


def test_scale_turns_a_large_disc_small_only_from_three_quarters():
    p, _ = scenes("sizes", 200)
    white = replace(p, fg=torch.ones(200, 3), bg=torch.zeros(200, 3), offset=torch.zeros(200, 2))
    img = S.render_scenes(white)
    small = [S.SMALL[0] * S.W, S.SMALL[1] * S.W]
    large = [S.LARGE[0] * S.W, S.LARGE[1] * S.W]

    def crosses(m: float) -> bool:
        hit = False
        for sign in (1, -1):
            r = _radius(apply("scale", img, sign * m))
            hit |= bool(
                ((p.labels == 1) & (r <= small[1] + 0.2)).any()
                | ((p.labels == 0) & (r >= large[0] - 0.2)).any()
            )
        return hit

    assert not crosses(0.25) and not crosses(0.5)
    assert crosses(0.75) and crosses(1.0)


def test_translation_leaves_the_quadrant_gap_only_past_half_the_range():
    r = SYMMETRY.ranges["translate_x"]
    shift = [r.value(m, S.W, S.W) / S.W for m in GRID]  # fractions of the side
    gap = 0.15  # every centre is at least this far from the axis
    assert shift[1] < 2 * gap <= shift[2]  # safe to 0.5; from 0.75 a centre can cross into the next quadrant


def test_rotate_by_its_largest_angle_redraws_the_next_orientation():
    p, img = scenes("orientation", 48)
    p.offset.zero_()
    img = S.render_scenes(p)
    turned = [
        S.render_scenes(replace(p, linear=S._rot(torch.full((48,), a)) @ p.linear)) for a in (30.0, -30.0)
    ]
    moved = apply("rotate", img, 1.0) * 255
    err = min(_central(moved, t) for t in turned)
    assert err < 2.0  # the same image up to interpolation: the next class
    assert 22.5 + S.ORIENTATION_JITTER < 30.0 - S.ORIENTATION_JITTER  # at 0.75 no bar reaches the next class


def test_shear_by_its_largest_coefficient_redraws_a_leaning_square():
    p, img = scenes("shears", 60)
    p = p[p.labels == 0]
    img = S.render_scenes(p)
    n = len(p.labels)
    # the op shears about the top-left corner (-0.5, -0.5), so the centre moves too
    sh = torch.tensor([[1.0, -S.SHEAR], [0.0, 1.0]]).expand(n, 2, 2)
    centre = torch.full((n, 2, 1), (S.W - 1) / 2)
    moved_centre = (sh @ (centre + p.offset.unsqueeze(-1) + 0.5)).squeeze(-1) - 0.5 - (S.W - 1) / 2
    redrawn = S.render_scenes(replace(p, linear=sh @ p.linear, offset=moved_centre))
    moved = apply("shear_x", img, 1.0) * 255
    filled = apply("shear_x", torch.full_like(img, 255), 1.0) < 0.99  # the black the warp brings in
    assert (moved - redrawn.float()).abs()[~filled].mean() < 2.0
    inside = (moved_centre.abs() <= 0.15 * S.W).all(1)
    assert inside.float().mean() > 0.2  # and some of them where upright squares are drawn
    assert 0.75 * S.SHEAR + S.SHEAR_JITTER < S.SHEAR - S.SHEAR_JITTER


def _level(images: torch.Tensor, p: S.SceneParams) -> torch.Tensor:
    """The level at each shape's centre (0-1)."""
    c = (p.offset + (S.W - 1) / 2).round().long()
    return images.float()[torch.arange(len(c)), 0, c[:, 1], c[:, 0]] / 255


def test_brightness_and_solarize_move_a_level_into_the_other_class():
    p, img = scenes("levels", 200)
    dim, bright = p.labels == 0, p.labels == 1

    def crosses(op: str, m: float, signs=(1, -1)) -> bool:
        hit = False
        for s in signs:
            lv = _level(apply(op, img, s * m) * 255, p)
            hit |= bool(((dim & (lv >= S.BRIGHT[0])) | (bright & (lv <= S.DIM[1]) & (lv >= S.DIM[0]))).any())
        return hit

    assert not crosses("brightness", 0.25) and crosses("brightness", 0.5)
    assert torch.equal(apply("solarize", img, 0.25), img.float() / 255)  # threshold 0.75: nothing changes
    assert crosses("solarize", 0.5, (1,))


def test_hue_shifts_reach_another_class_from_three_quarters():
    p, img = scenes("hues", 120)
    corner = lambda x: x[:, :, 0, 0]  # noqa: E731 - the background, which carries the class

    def hues(x: torch.Tensor) -> torch.Tensor:
        import kornia

        return torch.rad2deg(kornia.color.rgb_to_hsv(corner(x).view(-1, 3, 1, 1))[:, 0, 0, 0]) % 360

    def nearest_other(m: float) -> float:
        worst = 180.0
        for s in (1, -1):
            h = hues(apply("hue", img, s * m))
            for k in range(3):
                d = ((h - 120.0 * k + 180) % 360 - 180).abs()
                other = p.labels != k
                worst = min(worst, float(d[other].min()))
        return worst

    assert nearest_other(0.5) > S.HUE_JITTER  # outside every other class's ±10°
    assert nearest_other(0.75) <= S.HUE_JITTER


def test_blur_and_softening_turn_sharp_shapes_soft():
    p, img = scenes("textures", 40)
    sharp = p.labels == 0
    for m, sigma in ((0.5, 0.75), (1.0, 1.5)):
        redrawn = S.render_scenes(replace(p, blur=torch.full((40,), sigma)))[sharp].float()
        assert (apply("gaussian_blur", img, m)[sharp] * 255 - redrawn).abs().mean() < 1.0
    assert 0.375 < S.SOFT[0] <= 0.75  # at m = 0.25 the blur is under the soft class's, at 0.5 inside


def test_erasing_draws_a_patched_scene_from_half_its_range():
    side = lambda m: round(math.sqrt(SYMMETRY.ranges["erasing"].value(m, S.W, S.W) * S.W * S.W))  # noqa: E731
    assert side(0.25) < S.PATCH_SIDE[0] <= side(0.5) and side(1.0) <= S.PATCH_SIDE[1]
    p, img = scenes("patches", 40)
    plain = p.labels == 0
    aux = torch.rand(40, 2, generator=torch.Generator().manual_seed(0))
    erased = apply("erasing", img, 0.5, aux)[plain]
    s = side(0.5)
    top = torch.floor(aux[plain, 0] * (S.W - s + 1)).long()
    left = torch.floor(aux[plain, 1] * (S.W - s + 1)).long()
    patched = replace(p[plain], patch=torch.stack([torch.full_like(top, s), top, left], 1))
    assert (erased * 255 - S.render_scenes(patched).float()).abs().max() <= 1


def test_posterize_wipes_a_faint_mark_only_at_four_bits():
    p, img = scenes("faint", 300)
    marked = p.labels == 1
    spread = lambda x: x.flatten(1).amax(1) - x.flatten(1).amin(1)  # noqa: E731
    assert (spread(apply("posterize", img, 0.75))[marked] > 0).all()
    assert (spread(apply("posterize", img, 1.0))[marked] == 0).sum() >= 0.1 * marked.sum()


def test_autocontrast_equalize_and_contrast_turn_faint_shapes_stark():
    p, img = scenes("stark", 120)
    faint = p.labels == 0
    for op in ("autocontrast", "equalize"):
        out = apply(op, img, 1.0)[faint]
        lo, hi = out.flatten(1).amin(1), out.flatten(1).amax(1)
        stark = (lo <= 1 / 255) & (hi >= 254 / 255)
        # equalize leaves an image alone when fewer than 255 pixels lie under its top level
        # (PIL): a dark shape this small; a light one it turns black and white
        unchanged = (out * 255 - img[faint].float()).abs().amax(dim=(1, 2, 3)) <= 1
        assert (stark | unchanged).all() and stark.float().mean() >= (1.0 if op == "autocontrast" else 0.3), (
            op
        )
    stark = ~faint
    for m, inside in ((1.0, True), (0.75, False)):
        out = apply("contrast", img, -m)[stark]
        delta = out.flatten(1).amax(1) - out.flatten(1).amin(1)
        in_range = (delta >= S.FAINT_DELTA[0]) & (delta <= S.FAINT_DELTA[1] + 1e-3)
        assert bool(in_range.any()) == inside, m


def test_desaturation_and_grayscale_turn_vivid_shapes_grayish():
    import kornia

    p, img = scenes("saturation", 120)
    vivid = p.labels == 0
    centre = lambda x: x[:, :, 16, 16].view(-1, 3, 1, 1)  # noqa: E731
    sat = lambda x: kornia.color.rgb_to_hsv(centre(x))[:, 1, 0, 0]  # noqa: E731
    gray = sat(apply("grayscale", img, 1.0))[vivid]
    assert (gray <= 0.01).all()
    assert (sat(apply("color", img, -1.0))[vivid] <= S.GRAYISH[1]).any()
    assert (sat(apply("color", img, -0.75))[vivid] > S.GRAYISH[1]).all()


# ------------------------------------------------------------ ground truth, held-out half


def _search_and_analyze(task: str, out: Path) -> int:
    """``autoaug search --dataset TASK --space symmetry`` with the CLI's defaults, then ``autoaug
    analyze`` as the suite's script runs it; one torch thread (two tasks share CI's two cores)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for argv in (["search", "--dataset", task, "--space", "symmetry", "--out", str(out), "--no-progress"],
                 ["analyze", str(out), "--no-lie", "--no-baseline"]):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "autoaug", *argv], env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(f"autoaug {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return 0


@pytest.mark.slow
def test_heldout_half_agrees_with_its_declared_truth(tmp_path):
    """The default search and ``autoaug analyze`` on every task of the held-out half, whose truth no
    threshold was set on (they were set on the calibration half, frozen at 8f51756): no op that
    keeps a task's label is called ``breaks`` and no op that breaks it at every magnitude is
    called ``symmetry``; over the half, at least 90% of the decided verdicts are right on keeps vs
    breaks and 85% exactly, with at most a quarter undecided. (Measured at the freeze: 96.6%,
    94.3%, 12 of 99 undecided; results/symmetry_suite/heldout.md.) About 20 minutes on 2 cores."""
    from autoaug.analysis.report import saved_verdicts
    from autoaug.analysis.verdicts import agreement

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda t: _search_and_analyze(t, tmp_path / t), S.HELD_OUT))
    totals = {"ops": 0, "decided": 0, "exact_count": 0, "binary_count": 0, "undecided": 0}
    wrong_way = []
    for task in S.HELD_OUT:
        truth, safe = S.SUITE[task].truth, S.SUITE[task].safe
        verdicts = saved_verdicts(tmp_path / task)
        score = agreement(verdicts, truth, safe)
        for k in totals:
            totals[k] += score[k]
        wrong_way += [(task, op, t, verdicts[op].verdict) for op, t in truth.items()
                      if (t != "breaks" and verdicts[op].verdict == "breaks")
                      or (t == "breaks" and verdicts[op].verdict == "symmetry")]  # fmt: skip
    assert not wrong_way, wrong_way
    assert totals["binary_count"] >= 0.90 * totals["decided"], totals
    assert totals["exact_count"] >= 0.85 * totals["decided"], totals
    assert totals["undecided"] <= 0.25 * totals["ops"], totals
