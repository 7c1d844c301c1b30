"""The bilevel searcher: the hypergradient against finite differences, the relaxed policy against
the exported one, determinism, resume, outputs that `show` and `analyze` read, a streamed folder,
and the weight of a label-changing op going down."""

import json

import pytest
import torch
import torch.nn.functional as F
from test_stream import make_photo_folder
from torch import nn
from torch.func import functional_call

from autoaug.cli import main
from autoaug.ops import get_op
from autoaug.policy import Policy, PolicyParams
from autoaug.search import SearchConfig, get_searcher
from autoaug.search.bilevel import BilevelStep, RelaxedPolicy, hypergradient
from autoaug.spaces import get_space
from autoaug.train import Trainer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors on a shared 2-core machine: a second thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_problem(relaxation: str):
    """A float64 conv net with BatchNorm, a two-stage policy, fixed noise,
    and the closures of the unrolled problem."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).double()
    # Ops smooth in their input and magnitude: a straight-through op in the second stage would
    # pass a surrogate gradient back to the first, and equalize quantizes its input.
    ops = [n for n in get_space("symmetry").ops
           if get_op(n).grad == "exact" or (not get_op(n).has_magnitude and n != "equalize")]  # fmt: skip
    policy = RelaxedPolicy("symmetry", stages=2, init_prob=0.6, init_magnitude=0.4, ops=ops).double()
    with torch.no_grad():  # away from the symmetric start, so every entry has its own derivative
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x = 0.1 + 0.8 * torch.rand(16, 3, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(3, (16,), generator=g)
    xv = torch.rand(5, 3, 12, 12, generator=g, dtype=torch.float64)
    yv = torch.randint(3, (5,), generator=g)
    noise = policy.sample_noise(16, g)
    buffers = dict(model.named_buffers())

    def train_loss(w, augmented=None):
        xa = policy(x, noise, 0.7, relaxation) if augmented is None else augmented
        return F.cross_entropy(functional_call(model, {**w, **buffers}, (xa,)), y)

    def val_loss(w):
        return F.cross_entropy(functional_call(model, {**w, **buffers}, (xv,)), yv)

    return model, policy, train_loss, val_loss


def _unrolled(model, train_loss, val_loss, lr):
    """``L_val(w − lr ∇_w L_train(w))`` at the policy's current parameters, by plain autograd."""
    w = {n: p.detach().requires_grad_() for n, p in model.named_parameters()}
    grads = torch.autograd.grad(train_loss(w), list(w.values()))
    return val_loss({n: p - lr * g for (n, p), g in zip(w.items(), grads)}).item()


def _smooth_entries(policy: RelaxedPolicy, relaxation: str) -> list[tuple[int, int, int]]:
    """(tensor, stage, op) entries whose relaxed objective is differentiable: every op and
    application logit of the soft relaxation, and the magnitudes of exactly differentiable ops."""
    exact = [k for k, n in enumerate(policy.ops) if get_op(n).grad == "exact"]
    entries = [(2, s, k) for s in range(policy.stages) for k in exact]
    if relaxation == "soft":
        others = [k for k, n in enumerate(policy.ops) if n != "identity"]
        entries += [(t, s, k) for t in (0, 1) for s in range(policy.stages) for k in others]
    return entries[::2]  # every other one: the check stays broad and the test fast


@pytest.mark.parametrize("relaxation", ["soft", "hard"])
def test_hypergradient_matches_finite_differences(relaxation):
    model, policy, train_loss, val_loss = _tiny_problem(relaxation)
    params = list(policy.parameters())
    lr = 0.5
    hyper, _, _, _ = hypergradient(model, params, train_loss, val_loss, lr, "second_order")
    h = 1e-6
    checked = 0
    for t, s, k in _smooth_entries(policy, relaxation):
        with torch.no_grad():
            params[t][s, k] += h
        up = _unrolled(model, train_loss, val_loss, lr)
        with torch.no_grad():
            params[t][s, k] -= 2 * h
        down = _unrolled(model, train_loss, val_loss, lr)
        with torch.no_grad():
            params[t][s, k] += h
        fd = (up - down) / (2 * h)
        assert hyper[t][s, k].item() == pytest.approx(fd, rel=1e-4, abs=1e-9), (t, policy.ops[k])
        checked += abs(fd) > 1e-7
    assert checked >= (20 if relaxation == "soft" else 3)  # the check is not vacuous
    # DARTS's finite difference of first-order gradients agrees with the exact second-order one.
    first, _, _, _ = hypergradient(model, params, train_loss, val_loss, lr, "first_order", fd_radius=1e-4)
    for a, b in zip(hyper, first):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-8)


def test_hard_relaxation_applies_what_the_exported_policy_applies(rgb_images):
    policy = RelaxedPolicy("symmetry", stages=2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    x = rgb_images.repeat(8, 1, 1, 1)
    noise = policy.sample_noise(len(x), g)
    with torch.no_grad():
        relaxed = policy(x, noise)
    # The same draws, read as the exported policy's parameters.
    op = (policy.op_logits[:, None, :] + noise.gumbel).argmax(-1)
    applied = (policy.prob_logits.gather(1, op) + noise.logistic.gather(2, op[..., None]).squeeze(-1)) > 0
    signed = torch.tensor([get_op(n).signed for n in policy.ops])
    params = PolicyParams(op=op, applied=applied, magnitude=policy.magnitudes().detach().gather(1, op),
                          sign=torch.where(signed[op], noise.sign, 1.0), aux=noise.aux)  # fmt: skip
    exported = policy.to_policy().apply(x, params=params)
    assert applied.any() and (~applied).any()
    assert torch.allclose(relaxed, exported, atol=1e-4)


def test_gradients_reach_every_kind_of_parameter(rgb_images):
    policy = RelaxedPolicy("symmetry", stages=1)
    x = rgb_images.repeat(16, 1, 1, 1)
    g = torch.Generator().manual_seed(2)
    noise = policy.sample_noise(len(x), g)
    (policy(x, noise) * torch.randn(x.shape, generator=g)).sum().backward()
    chosen = (policy.op_logits[0] + noise.gumbel[0]).argmax(-1)
    applied = (policy.prob_logits[0, chosen] + noise.logistic[0].gather(1, chosen[:, None]).squeeze(1)) > 0
    ops = [k for k in chosen.unique().tolist() if policy.ops[k] != "identity"]
    # A relaxed sample can saturate (its derivative underflows), so most, not all, must move.
    assert (policy.op_logits.grad[0, ops] != 0).float().mean() > 0.8
    assert (policy.prob_logits.grad[0, ops] != 0).float().mean() > 0.8
    kinds = set()
    for k in ops:
        name = policy.ops[k]
        if get_op(name).has_magnitude and applied[chosen == k].any():
            assert policy.magnitude_logits.grad[0, k] != 0, name
            kinds.add(get_op(name).grad)
    # Exact gradients, the ops' straight-through surrogates and the identity path (rotate90, erasing).
    assert kinds == {"exact", "straight-through", "none"}


def _tiny(tmp_path, name, **kw):
    base = dict(method="bilevel", dataset="arrows", train_size=320, val_size=64, batch_size=64, epochs=2,
                space="symmetry", progress=False, out=str(tmp_path / name), seed=3, probe_size=32,
                mode="online", test_every=100)  # fmt: skip
    base.update(kw)
    return SearchConfig.of(**base)


def test_seeded_run_resumes_to_the_uninterrupted_result_and_is_readable(tmp_path):
    full = get_searcher("bilevel")(_tiny(tmp_path, "full")).run()
    # The same seed again, killed after the first epoch of two and resumed: the same run. (The
    # equality is also the determinism check: a seed fixes the policy, the model and the history.)
    cfg = _tiny(tmp_path, "cut")
    step = BilevelStep(cfg)
    trainer = Trainer(cfg, step=step)
    step.bind(trainer)
    trainer.config.epochs = 1  # one epoch of the two-epoch schedule, then "killed"
    trainer.fit()
    state = torch.load(trainer.checkpoint_path, weights_only=True)
    assert state["epoch"] == 1 and "policy" in state["step"]
    cfg.epochs = 2
    resumed = get_searcher("bilevel")(cfg).run(resume=True)
    assert resumed.policy.to_dict() == full.policy.to_dict()
    h_full = json.loads((tmp_path / "full" / "history.json").read_text())
    assert h_full == json.loads((tmp_path / "cut" / "history.json").read_text())
    assert torch.equal(
        torch.load(tmp_path / "full" / "model.pt", weights_only=True)["head.weight"],
        torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["head.weight"],
    )
    for f in ("policy.json", "history.json", "metrics.jsonl", "config.yaml", "model.pt", "checkpoint.pt"):
        assert (tmp_path / "full" / f).is_file(), f
    # The policy moved, and the history records its trajectory.
    epochs = h_full["epochs"]
    assert len(epochs) == 2 and epochs[0]["op_weights"] != epochs[1]["op_weights"]
    assert full.policy.meta["searcher"] == "bilevel" and len(full.policy.stages) == 2
    # It knows the image size it was learned at, so it exports without being told (translations).
    assert full.policy.meta["image_size"] == [32, 32]
    assert resumed.policy.meta["image_size"] == [32, 32]
    # `show` draws the trajectory; `analyze` reads the search's evidence.
    run = tmp_path / "full"
    assert main(["show", str(run), "--plot", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p_history.png").read_bytes()[:8] == PNG
    from autoaug.analysis.verdicts import SearchStats

    ev = SearchStats.from_run(run).evidence("vflip")
    assert ev is not None and "weight_low" in ev.votes and "excess" in ev.votes
    assert main(["analyze", str(run), "--images", "32", "--magnitudes", "1", "--no-lie"]) == 0
    report = json.loads((run / "analysis" / "symmetry_report.json").read_text())
    assert report["search"]["method"] == "bilevel" and report["ops"]["vflip"]["search"] is not None


def test_search_mode_trains_a_proxy_and_writes_a_policy_for_train(tmp_path):
    cfg = _tiny(tmp_path, "s", mode="search", epochs=4, proxy_data=0.5, proxy_epochs=0.5, space="standard")
    result = get_searcher("bilevel")(cfg).run()
    assert result.summary["epochs"] == 2 and result.summary["train_images"] == 128
    assert len((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()) == 2
    policy = tmp_path / "s" / "policy.json"
    assert main(["train", "--policy", str(policy), "--dataset", "arrows", "--train-size", "128", "--epochs", "1",
                 "--batch-size", "64", "--no-progress", "--out", str(tmp_path / "t")]) == 0  # fmt: skip
    assert (tmp_path / "t" / "model.pt").is_file()


def test_search_on_a_streamed_folder_equals_the_search_in_memory(tmp_path):
    """A folder of mixed-size JPEGs and PNGs, resized on load: streamed from disk (the validation
    batches and the probe decoded as drawn) it learns the policy it learns held in memory."""
    photos = make_photo_folder(tmp_path / "photos")
    learned = {}
    for stream in ("on", "off"):
        out = tmp_path / stream
        assert main(["search", "--method", "bilevel", "--dataset", f"folder:{photos}", "--image-size", "32x32",
                     "--stream", stream, "--workers", "0", "--epochs", "2", "--batch-size", "8", "--probe-size", "8",
                     "--device", "cpu", "--no-progress", "--out", str(out)]) == 0  # fmt: skip
        policy = Policy.load(out / "policy.json")
        assert policy.meta["image_size"] == [32, 32] and (out / "history.json").is_file()
        learned[stream] = policy.to_dict()
    assert learned["on"] == learned["off"]


@pytest.mark.slow
def test_weight_of_label_changing_flips_goes_down(tmp_path):
    """On ``arrows`` a flip turns one class into another (the dataset's ground truth): the
    search gives both flips less weight than it started with and than the ops that keep the label."""
    from autoaug.data.synthetic import ARROWS_GROUND_TRUTH

    ops = ["identity", "brightness", "contrast", "hflip", "vflip"]
    assert [ARROWS_GROUND_TRUTH[o] for o in ops[1:]] == ["symmetry", "symmetry", "breaks", "breaks"]
    cfg = _tiny(tmp_path, "flips", train_size=1200, val_size=200, epochs=6, policy_every=1, policy_lr=0.1,
                unroll="first_order", seed=0)  # fmt: skip
    step = BilevelStep(cfg, ops=ops)
    start = step.policy.op_weights()
    trainer = Trainer(cfg, step=step)
    step.bind(trainer)
    metrics = trainer.fit()
    assert metrics["val_acc"] > 0.9  # the model knows the arrows' directions
    end = step.history[-1]["op_weights"]
    keep = min(end[o] for o in ("identity", "brightness", "contrast"))
    for flip in ("hflip", "vflip"):
        assert end[flip] < 0.8 * start[flip], (flip, start[flip], end[flip])
        assert end[flip] < keep, (flip, end)


def test_prior_export_is_randaugments_point_less_the_avoided_ops(tmp_path):
    """export prior: RandAugment's point (2 stages, M 9 of 31, each op always applied) over the
    geometric and photometric ops of the search less those it avoided; no flips or erasing."""
    from autoaug.search.bilevel import avoided_ops
    from autoaug.spaces import randaugment_ops

    cfg = _tiny(tmp_path, "prior", mode="search", epochs=4, proxy_data=0.5, proxy_epochs=0.5, export="prior")
    policy = get_searcher("bilevel")(cfg).run().policy
    history = json.loads((tmp_path / "prior" / "history.json").read_text())
    avoided = {op for op, _ in avoided_ops(history["epochs"])}
    want = [op for op in history["ops"] if op in randaugment_ops("symmetry") and op not in avoided]
    assert policy.meta["export"] == "prior" and sorted(policy.meta["avoided"]) == sorted(avoided)
    assert len(policy.stages) == 2 and [e.op for e in policy.stages[0]] == want and "hflip" not in want
    assert all(e.prob == 1.0 and e.magnitudes in ((0.3,), (0.0,)) for e in policy.stages[0])
    # An op driven to no weight whose loss stays far above the clean loss is left out.
    step = BilevelStep(cfg)
    weights = {op: 1.0 for op in step.policy.ops} | {"rotate": 0.0}
    losses = {op: 0.1 for op in step.policy.ops} | {"rotate": 3.0}
    step.history = [{"op_weights": weights, "op_aug_loss": losses, "clean_loss": 0.1}]
    written = step.learned_policy()
    assert written.meta["avoided"] == ["rotate"] and "rotate" not in written.ops and "shear_x" in written.ops


def test_bad_settings_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        BilevelStep(_tiny(tmp_path, "x", mode="offline"))
    with pytest.raises(ValueError, match="unroll must be one of"):
        BilevelStep(_tiny(tmp_path, "x", unroll="third_order"))
    with pytest.raises(ValueError, match="export must be one of"):
        BilevelStep(_tiny(tmp_path, "x", export="best"))
    assert main(["search", "--method", "bilevel", "--mode", "sideways", "--out", str(tmp_path / "y")]) == 2


def test_auto_export_writes_the_prior_when_the_weights_never_left_uniform(tmp_path):
    """export auto: the prior where every stage's largest weight is under 1.5x the uniform share
    (the search learned nothing), the learned policy where one stage's weights moved past it."""
    from autoaug.search.bilevel import UNMOVED, largest_share, learned_nothing

    step = BilevelStep(_tiny(tmp_path, "auto", mode="search", export="auto"))
    k = len(step.policy.ops)
    step.history = [{"op_weights": {op: 1 / k for op in step.policy.ops},
                     "op_aug_loss": {op: 0.1 for op in step.policy.ops}, "clean_loss": 0.1}]  # fmt: skip
    with torch.no_grad():
        step.policy.op_logits.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    assert max(largest_share(step.policy.weights())) < UNMOVED
    written = step.learned_policy()
    assert written.meta["export"] == "prior" and written.meta["learned_nothing"] is True
    assert (
        len(written.stages) == 2
        and "hflip" not in written.ops
        and all(e.prob == 1.0 for e in written.stages[0])
    )
    with torch.no_grad():
        step.policy.op_logits[1, step.policy.ops.index("rotate")] = 2.0  # one stage moved
    assert not learned_nothing(step.policy.weights())
    written = step.learned_policy()
    assert written.meta["export"] == "learned" and "learned_nothing" not in written.meta
    assert len(written.stages[0]) == k and written.meta["largest_weight_share"][1] > UNMOVED
    # In online mode the model trained with the learned policy: auto writes it, moved or not.
    online = BilevelStep(_tiny(tmp_path, "online", mode="online", export="auto"))
    online.history = step.history
    assert (
        "learned_nothing" not in online.learned_policy().meta and len(online.learned_policy().stages[0]) == k
    )


def test_the_command_line_says_when_auto_wrote_the_prior(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["search", "--method", "bilevel", "--export", "auto", "--dataset", "arrows", "--train-size", "160",
            "--epochs", "1", "--batch-size", "32", "--probe-size", "16", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    meta = json.loads((out / "policy.json").read_text())["meta"]
    assert meta["learned_nothing"] is True and meta["export"] == "prior"
    assert "the op weights stayed near uniform" in printed and "(export auto)" in printed
