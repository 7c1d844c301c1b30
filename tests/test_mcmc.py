"""The MCMC searcher: acceptance rule, the chain's law, dual updates, determinism, resume."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from autoaug.search import SearchConfig, get_searcher
from autoaug.search.mcmc import (
    MCMCStep,
    StateSpace,
    constrained_loss,
    mh_step,
    per_op_dual_step,
    single_dual_step,
)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sampler_agreement", ROOT / "scripts" / "sampler_agreement.py")
sampler_agreement = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sampler_agreement)


def test_acceptance_rule_on_known_losses():
    g = torch.Generator().manual_seed(0)
    n = 20_000
    state = {"op": torch.zeros(n, dtype=torch.long)}
    proposal = {"op": torch.ones(n, dtype=torch.long)}
    # A proposal with a higher loss is always accepted.
    new, loss, accept = mh_step(state, torch.full((n,), 1.0), proposal, torch.full((n,), 2.0), g)
    assert accept.all() and (new["op"] == 1).all() and (loss == 2.0).all()
    # One with a quarter of the loss is accepted a quarter of the time.
    new, loss, accept = mh_step(state, torch.full((n,), 2.0), proposal, torch.full((n,), 0.5), g)
    assert accept.float().mean().item() == pytest.approx(0.25, abs=0.015)
    assert torch.equal(loss[accept], torch.full((int(accept.sum()),), 0.5))
    assert (new["op"][~accept] == 0).all()


def test_chain_law_approaches_the_loss_proportional_target():
    """Chains moved by MCMCStep's own proposal on a fixed loss table end up ∝ the loss."""
    cfg = SearchConfig.of(space="standard", levels=4, constraint="single", seed=0)
    step = MCMCStep(cfg)
    space: StateSpace = step.states
    k, lv = space.size, space.levels
    table = torch.rand(k, lv, 2, generator=torch.Generator().manual_seed(1)) * 3 + 0.05

    def loss_of(s):
        return table[s["op"], s["level"], (s["sign"] > 0).long()]

    n = 20_000
    state = step.chains.start(n, None)
    loss = loss_of(state)
    for _ in range(60):
        proposal = step.chains.propose(state)
        state, loss, _ = mh_step(state, loss, proposal, loss_of(proposal), step.generator)
    counts = torch.zeros_like(table)
    counts.index_put_(
        (state["op"], state["level"], (state["sign"] > 0).long()), torch.ones(n), accumulate=True
    )
    empirical, target = counts / n, table / table.sum()
    uniform = torch.full_like(target, 1 / target.numel())
    tv = 0.5 * (empirical - target).abs().sum().item()
    assert tv < 0.045  # total variation; the sampling noise of 20,000 chains over 112 states is ≈ 0.03
    assert tv < 0.25 * 0.5 * (uniform - target).abs().sum().item()  # far from where the chains started
    # Per op, the mass follows the op's total loss.
    assert torch.corrcoef(torch.stack([empirical.sum((1, 2)), target.sum((1, 2))]))[0, 1] > 0.9


def test_each_image_is_trained_on_its_own_law():
    """With an image-dependent loss table, the state each image is trained with follows that
    image's π(g|x) (scripts/sampler_agreement.py): per-image agreement 0 means the trained state
    does not depend on the image, 1 is an exact draw from π(·|x) at every visit."""
    sim = sampler_agreement.simulate
    kw = dict(n=1000, epochs=15)
    single = sim("per-image", False, **kw)
    assert single["agreement"] > 0.2  # 0.34 measured; an exact draw from π(·|x) each visit scores 1.0
    # Chains kept per batch position (the sampler before per-image chains) train on a state
    # accepted on another image: no agreement at all. Shuffling the images does the same.
    slot = sim("batch-slot", False, **kw)
    assert abs(slot["agreement"]) < 0.1
    assert abs(sim("per-image", False, shuffle_images=True, **kw)["agreement"]) < 0.1
    # The law over ops is at least as close to its target as the batch-position chains'.
    assert single["marginal_tv"] <= slot["marginal_tv"]
    # Per-op constraints deal the op; the chain moves over levels: one step per visit already
    # follows the image, more steps follow it closer.
    per_op = [sim("per-image", True, chain_length=k, **kw)["agreement"] for k in (1, 2)]
    assert per_op[0] > 0.2 and per_op[1] > per_op[0] + 0.08  # 0.31, 0.48 measured
    assert abs(sim("batch-slot", True, **kw)["agreement"]) < 0.1


def test_chains_are_kept_per_image_across_visits():
    step = MCMCStep(SearchConfig.of(space="standard", levels=5, constraint="single", seed=0))
    index = torch.tensor([7, 3, 11])
    first = step.chains.start(3, index)
    step.chains.keep(index, first)
    again = step.chains.start(3, torch.tensor([11, 7, 3]))  # the same images, in another order
    for key in ("op", "level", "sign"):
        assert again[key].tolist() == [first[key][2], first[key][0], first[key][1]]
    # Images never seen start from a uniform draw; so does a batch without indices.
    other = [step.chains.start(500, None)["op"] for _ in range(2)]
    assert not torch.equal(*other)


def test_every_op_is_visited_when_there_are_fewer_copies_than_ops():
    """A batch of 16 with n_aug 0.5 has 8 copies for the 23 ops of the symmetry space: the ops
    are dealt in turn, so every op is visited, evenly."""
    step = MCMCStep(SearchConfig.of(space="symmetry", constraint="per_op", batch_size=16, n_aug=0.5))
    k = step.states.size
    dealt = torch.cat([step.chains.start(8, None)["op"] for _ in range(k)])  # 8·23 copies
    assert torch.bincount(dealt, minlength=k).tolist() == [8] * k
    state = step.chains.start(230, None)
    assert torch.equal(step.chains.propose(state)["op"], state["op"])  # a chain keeps the op it was dealt


def test_single_dual_update():
    cfg = SearchConfig.of(constraint="single", dual_lr=0.1, epsilon=0.5)
    lam = torch.zeros(1, dtype=torch.float64)
    # Mean augmented loss 1.5 over 4 copies: λ rises by 0.1 · (1.5 − 0.5).
    lam = single_dual_step(lam, torch.tensor([6.0]), torch.tensor([4.0]), cfg)
    assert lam.item() == pytest.approx(0.1)
    # Below ε it falls, and never below 0.
    lam = single_dual_step(lam, torch.tensor([0.0]), torch.tensor([4.0]), cfg)
    assert lam.item() == pytest.approx(0.05)
    lam = single_dual_step(lam, torch.tensor([0.0]), torch.tensor([4.0]), cfg)
    assert lam.item() == 0.0
    # A batch without copies leaves it alone.
    assert (
        single_dual_step(torch.tensor([0.3], dtype=torch.float64), torch.zeros(1), torch.zeros(1), cfg).item()
        == 0.3
    )


def test_per_op_dual_step_reaches_the_resilient_equilibrium():
    cfg = SearchConfig.of(dual_lr=0.15, relax_lr=0.05, relax_alpha=2.0, epsilon=0.3)
    lam = torch.zeros(3, dtype=torch.float64)
    relax = torch.zeros(3, dtype=torch.float64)
    loss_sum = torch.tensor([2.6, 0.2, 0.0])  # op 0: two copies at 1.3, cannot meet ε; op 1 meets it
    count = torch.tensor([2.0, 2.0, 0.0])  # op 2 never appears: its variables stay put
    for _ in range(5000):
        lam, relax = per_op_dual_step(lam, relax, loss_sum, count, cfg)
    # Op 0: λ = α·u and ℓ − ε − u = 0, so u = 1.0 and λ = 2.0.
    assert relax[0].item() == pytest.approx(1.0, abs=1e-3)
    assert lam[0].item() == pytest.approx(2.0, abs=1e-3)
    assert lam[1].item() == 0 and relax[1].item() == 0
    assert lam[2].item() == 0 and relax[2].item() == 0


def test_the_documented_relaxation_cost_is_the_real_one():
    """A tiny problem with a known answer, solved by the step's own primal objective
    (:func:`constrained_loss`) and dual step: θ ∈ R, clean loss (θ − 1)², two "ops" with losses
    (θ − b_g)² + c_g. The resilient problem ``min ℓ_0 + Σ α u²/2  s.t.  ℓ_g ≤ ε + u_g`` has its
    minimum where ``ℓ_0 + Σ α/2·max(0, ℓ_g − ε)²`` has, with ``α u_g = λ_g`` there. A primal that
    averaged over the ops instead of summing would land elsewhere (α/K in effect)."""
    alpha, eps = 1.0, 0.2
    b, c = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 0.0], dtype=torch.float64)
    cfg = SearchConfig.of(dual_lr=0.1, relax_lr=0.05, relax_alpha=alpha, epsilon=eps)
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=0.02)
    lam, relax = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    group = torch.tensor([0, 0, 1, 1])  # two copies per op
    counts = torch.tensor([2.0, 2.0])
    for _ in range(20_000):
        aug = ((theta - b[group]) ** 2 + c[group]).view(-1)
        total = constrained_loss((theta - 1).pow(2).sum(), aug, group, lam, counts)
        opt.zero_grad()
        total.backward()
        opt.step()
        with torch.no_grad():
            sums = torch.zeros(2, dtype=torch.float64).index_add_(0, group, aug.detach())
        lam, relax = per_op_dual_step(lam, relax, sums, counts, cfg)
    grid = torch.linspace(-2, 4, 600_001, dtype=torch.float64)
    losses = (grid[:, None] - b) ** 2 + c
    objective = (grid - 1) ** 2 + (alpha / 2 * (losses - eps).clamp(min=0) ** 2).sum(1)
    best = grid[objective.argmin()].item()
    assert theta.item() == pytest.approx(best, abs=2e-3)
    assert torch.allclose(alpha * relax, lam, atol=2e-3)
    ell = (theta.detach() - b) ** 2 + c
    assert torch.allclose(relax, (ell - eps).clamp(min=0), atol=2e-3)
    assert lam[1].item() == 0 and lam[0].item() > 0.2  # op 1 meets its constraint at θ*, op 0 does not
    # The averaged primal's answer is measurably different (0.813 against 0.741).
    averaged = (grid - 1) ** 2 + (alpha / 4 * (losses - eps).clamp(min=0) ** 2).sum(1)
    assert abs(grid[averaged.argmin()].item() - best) > 0.05


def test_the_learned_policy_is_continuous_in_the_duals():
    """All λ = 0 is no augmentation; a tiny λ on one op is that op with a tiny probability; λ on
    an unmet op alone is (nearly) no augmentation, like its neighbours; a met op's λ counts."""
    cfg = SearchConfig.of(dataset="glyphs", space="symmetry", progress=False, levels=5, epsilon=0.6)
    step = MCMCStep(cfg)
    ops = step.states.ops
    k = len(ops)

    def policy(lam, relax=None):
        step.history = [{"lambda": lam, "relaxation": relax or [0.0] * k, "op_aug_loss": {}, "op_proposal_loss": {},
                         "histogram": [[1.0] * cfg.mcmc.levels for _ in range(k)], "acceptance": 0.5}]  # fmt: skip
        p = step.learned_policy()
        return (
            {e.op: e.prob * e.weight / sum(x.weight for x in p.stages[0]) for e in p.stages[0]}
            if p.stages
            else {}
        )

    assert policy([0.0] * k) == {}
    one = [0.0] * k
    one[ops.index("rotate")] = 1e-6
    assert policy(one) == {"rotate": pytest.approx(1e-6, rel=1e-3)}  # applied to one image in a million
    unmet, relax = [0.0] * k, [0.0] * k
    unmet[ops.index("hflip")], relax[ops.index("hflip")] = 1.2, 0.9  # u ≥ ε: tapered to nothing
    assert policy(unmet, relax) == {}
    unmet[ops.index("hflip")], relax[ops.index("hflip")] = 1.2, 0.59  # just under: a sliver
    assert policy(unmet, relax)["hflip"] < 0.02
    both = list(unmet)
    both[ops.index("rotate")] = 0.25  # a met op beside it: (λ = 0.25) / (1 + Σ w)
    got = policy(both, relax)
    assert got["rotate"] == pytest.approx(
        0.25 / (1 + 0.25 + got["hflip"] / (1 - sum(got.values()))), rel=0.05
    )


def _tiny(tmp_path, name, **kw):
    base = dict(dataset="glyphs", train_size=256, val_size=64, batch_size=64, epochs=2, levels=5, progress=False,
                space="standard", out=str(tmp_path / name), seed=3)  # fmt: skip
    base.update(kw)
    return SearchConfig.of(**base)


def test_same_seed_same_policy(tmp_path):
    a = get_searcher("mcmc")(_tiny(tmp_path, "a")).run()
    b = get_searcher("mcmc")(_tiny(tmp_path, "b")).run()
    assert a.policy.to_dict() == b.policy.to_dict()
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert ha == hb
    for f in ("policy.json", "history.json", "metrics.jsonl", "config.yaml", "model.pt", "checkpoint.pt"):
        assert (tmp_path / "a" / f).is_file(), f
    assert a.policy.meta["image_size"] == [32, 32]  # what the export needs for pixel translations
    # The run directory is a policy wherever one is expected, and `show` draws its history.
    from autoaug.cli import main

    assert main(["show", str(tmp_path / "a"), "--plot", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a_history.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_keeps_sampler_and_duals(tmp_path):
    full = get_searcher("mcmc")(_tiny(tmp_path, "full", epochs=3)).run()
    # Stop after the first epoch by running a trainer whose loop we cut short, then resume.
    from autoaug.search.mcmc import MCMCStep as Step
    from autoaug.train import Trainer

    cfg = _tiny(tmp_path, "cut", epochs=3)
    step = Step(cfg)
    trainer = Trainer(cfg, step=step)
    trainer.config.epochs = 1  # run one epoch of a three-epoch schedule
    trainer.fit()
    state = torch.load(trainer.checkpoint_path, weights_only=True)
    assert state["epoch"] == 1 and state["step"]["chains"]["seen"].any()
    cfg.epochs = 3
    resumed = get_searcher("mcmc")(cfg).run(resume=True)
    assert resumed.policy.to_dict() == full.policy.to_dict()
    h_full = json.loads((tmp_path / "full" / "history.json").read_text())
    h_cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert h_full["epochs"] == h_cut["epochs"]


def _history(series: dict[str, list[float]], relax: dict[str, float] | None):
    ops = list(series)
    epochs = []
    n = len(next(iter(series.values())))
    for i in range(n):
        epochs.append({
            "op_aug_loss": {o: s[i] for o, s in series.items()},
            "op_proposal_loss": {o: s[i] for o, s in series.items()},
            "relaxation": [relax[o] for o in ops] if relax else None,
        })  # fmt: skip
    return epochs, ops


def test_rejected_ops_separate_a_floor_from_a_slow_symmetry():
    from autoaug.search.mcmc import rejected_ops

    series = {
        "hflip": [1.6, 1.2, 1.1, 1.8, 2.1, 1.9, 1.8],  # changes the label: a floor that does not fall
        "scale": [1.9, 1.9, 1.6, 1.4, 1.1, 1.0, 1.0],  # a hard symmetry: large, but still falling
        "rotate": [1.2, 0.9, 0.6, 0.5, 0.4, 0.35, 0.3],  # an easy symmetry
    }
    epochs, ops = _history(series, {"hflip": 1.2, "scale": 0.55, "rotate": 0.0})
    assert [name for name, _ in rejected_ops(epochs, ops, 0.6)] == ["hflip"]
    epochs, ops = _history(series, None)  # one constraint: judged by the proposals' losses
    assert [name for name, _ in rejected_ops(epochs, ops, 0.6)] == ["hflip"]
    assert rejected_ops([], [], 0.6) == []


def test_unmet_ops_are_left_out_of_the_learned_policy(tmp_path):
    """Unmet ops are named; the policy tapers their weight by how far their relaxation is up."""
    from autoaug.search.mcmc import unmet_ops

    series = {"hflip": [1.6, 1.8, 1.9, 1.8], "scale": [1.9, 1.6, 1.2, 1.0], "rotate": [1.2, 0.6, 0.4, 0.3]}
    epochs, ops = _history(series, {"hflip": 1.2, "scale": 0.55, "rotate": 0.0})
    assert [name for name, _ in unmet_ops(epochs, ops, 0.6)] == ["hflip", "scale"]

    cfg = SearchConfig.of(
        dataset="glyphs", train_size=64, space="symmetry", progress=False, out=str(tmp_path)
    )
    step = MCMCStep(cfg)
    k = step.states.size
    relax = [0.0] * k
    relax[step.states.ops.index("hflip")] = 1.2
    relax[step.states.ops.index("scale")] = 0.5
    lam = [0.3] * k
    loss = {o: 0.5 for o in step.states.ops} | {"hflip": 1.8, "scale": 1.0}
    step.history = [{"lambda": lam, "relaxation": relax, "op_aug_loss": loss, "op_proposal_loss": loss,
                     "histogram": [[1.0] * cfg.mcmc.levels for _ in range(k)], "acceptance": 0.5}]  # fmt: skip
    policy = step.learned_policy()
    weight = {e.op: e.weight for e in policy.stages[0]}
    # hflip's relaxation is above ε: no weight left; scale's is near it: a sixth of rotate's.
    assert "hflip" not in weight and weight["scale"] == pytest.approx(weight["rotate"] / 6)
    assert policy.meta["left_out"] == ["hflip"]


def test_search_command_ends_with_a_summary(tmp_path, capsys):
    """`autoaug search` prints the policy, the accuracy, what the task seems to reject (or that
    nothing seems to break it), and where the files are."""
    from autoaug.cli import main

    out = tmp_path / "run"
    argv = ["search", "--dataset", "glyphs", "--train-size", "256", "--epochs", "1", "--batch-size", "64",
            "--levels", "5", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and f"files in {out}" in text
    verdict_lines = [line for line in text.splitlines() if "reject" in line or "seems to break" in line]
    assert len(verdict_lines) >= 1, text
    assert not ("no op seems to break the task" in text and "constraint not met" in text), text


def test_fused_pass_gives_the_same_losses_and_gradients(tmp_path):
    """One forward over the clean and augmented images computes what two separate ones do (BatchNorm
    in eval mode, so that its statistics do not depend on the batch), and the gradients agree."""
    from autoaug.train import Trainer

    results = []
    for fused in (False, True):
        cfg = _tiny(tmp_path, f"fused{fused}")
        cfg = cfg.replace(fused=fused, chain_length=1)
        step = MCMCStep(cfg)
        torch.manual_seed(0)
        trainer = Trainer(cfg, step=step)
        trainer.net.eval()
        images, labels = next(trainer.batches())
        total, stats = step.loss(trainer, images, labels)
        total.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.net.parameters() if p.grad is not None])
        results.append((total.detach(), stats, grads, step.chains.table, step.op_loss.clone()))
    (t0, s0, g0, slots0, ol0), (t1, s1, g1, slots1, ol1) = results
    assert torch.allclose(t0, t1, atol=1e-5)
    assert s0["clean_loss"] == pytest.approx(s1["clean_loss"], abs=1e-5)
    assert s0["aug_loss"] == pytest.approx(s1["aug_loss"], abs=1e-5)
    assert torch.allclose(g0, g1, atol=1e-5) and g0.abs().sum() > 0
    assert all(torch.equal(slots0[k], slots1[k]) for k in slots0)  # the sampler made the same moves
    assert torch.allclose(ol0, ol1, atol=1e-5)


def test_two_ranks_share_duals_statistics_and_policy(tmp_path):
    """Under torchrun (2 CPU processes, gloo), the per-op dual variables, relaxations, chains,
    history and policy are the same on both ranks: what the dual step and the statistics use is
    all-reduced, so neither rank drifts and rank 0's files speak for both."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(ROOT / "tests" / "mcmc_ddp_worker.py"), str(out)]  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["lam"] == r1["lam"] and r0["relax"] == r1["relax"]
    assert any(v > 0 for v in r0["lam"])  # the duals moved, so the equality says something
    assert r0["history"] == r1["history"] and r0["policy"] == r1["policy"]
    seen = r0["chains"]["seen"]
    assert r0["chains"] == r1["chains"] and sum(seen) > 0.5 * len(seen)  # both ranks' images, on both ranks
    assert r0["weights"] == r1["weights"]  # DistributedDataParallel kept the models equal


def test_search_on_a_task_the_model_cannot_learn_says_so(tmp_path, capsys):
    """Random labels: even the clean images (the identity's copies) stay above ε, so the summary
    says the model did not learn the task rather than that the task rejects every op."""
    import numpy as np

    from autoaug.cli import main

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.npz"
    np.savez(path, x=rng.integers(0, 256, (320, 16, 16, 3), dtype=np.uint8), y=rng.integers(0, 8, 320))
    out = tmp_path / "run"
    argv = ["search", "--dataset", f"npz:{path}", "--epochs", "6", "--batch-size", "32", "--levels", "5",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "the model did not learn the task" in text, text


def test_met_ranges_are_where_the_constraint_holds_uniformly_from_zero():
    """An op keeps the levels, from its smallest, whose uniform mixture has a mean loss ≤ ε; a
    level the chains never trained on neither meets nor breaks it; an op without levels is all
    or nothing."""
    from autoaug.search.mcmc import met_ranges

    ops = ["rotate", "scale", "hflip", "vflip"]
    hist = [[10, 10, 10, 10], [10, 0, 10, 10], [40, 0, 0, 0], [40, 0, 0, 0]]
    loss = [[0.1, 0.3, 0.9, 2.0], [0.7, 0.0, 0.6, 0.5], [0.4, 0, 0, 0], [1.5, 0, 0, 0]]
    got = met_ranges([{"histogram": hist, "level_loss": loss}], ops, 4, 0.6)
    # rotate: means 0.1, 0.2, 0.43, 0.825 -> 3 levels; scale: 0.7 (level 2 unseen), 0.65, 0.6 -> 4;
    # hflip's 0.4 meets ε: every level; vflip's 1.5 does not.
    assert got == {"rotate": 3, "scale": 4, "hflip": 4, "vflip": 0}
    # Two epochs pool their states by count: rotate's level 3 at (10·0.9 + 30·0.1) / 40 = 0.3.
    second = {
        "histogram": [[0, 0, 30, 0], [0] * 4, [0] * 4, [0] * 4],
        "level_loss": [[0, 0, 0.1, 0]] + [[0] * 4] * 3,
    }
    assert met_ranges([{"histogram": hist, "level_loss": loss}, second], ops, 4, 0.6)["rotate"] == 3


def test_randaugment_export_of_a_search(tmp_path):
    """export randaugment: RandAugment's form (export_ops stages, identity among uniformly picked
    ops, always applied) over the ops the search's model met the constraint at, each uniform up to
    its met level; the history records the loss per level it comes from."""
    from autoaug.ops import get_op

    # ε above every loss of a two-epoch search: every op meets it, at its whole range.
    cfg = _tiny(tmp_path, "ra", space="symmetry", export="randaugment", export_ops=2, epochs=2, epsilon=5.0)
    result = get_searcher("mcmc")(cfg).run()
    history = json.loads((tmp_path / "ra" / "history.json").read_text())
    levels = cfg.mcmc.levels
    assert all(len(e["level_loss"]) == len(history["ops"]) for e in history["epochs"])
    policy = result.policy
    assert policy.meta["export"] == "randaugment" and policy.meta["n_ops"] == 2
    assert len(policy.stages) == 2 and policy.stages[0] == policy.stages[1]
    from autoaug.search.mcmc import met_ranges

    half = history["epochs"][len(history["epochs"]) // 2 :]
    ranges = met_ranges(half, history["ops"], levels, cfg.mcmc.epsilon)
    want = {o for o, n in ranges.items() if n > 0 and o not in policy.meta["inert"]} | {"identity"}
    assert {e.op for e in policy.stages[0]} == want
    for e in policy.stages[0]:
        assert e.weight == 1.0 and e.prob == 1.0
        if get_op(e.op).has_magnitude and e.op != "identity":
            assert e.magnitudes == tuple((i + 1) / levels for i in range(ranges[e.op]))
    assert set(policy.meta["left_out"]) == {o for o, n in ranges.items() if n == 0}
    # glyphs are coloured: no op is inert on them; a search on grey images names the colour ops.
    assert policy.meta["inert"] == []
    assert all(n == levels for n in ranges.values()) and policy.meta["left_out"] == []
    # At ε = 0.6 no op's loss is under it after two tiny epochs: no augmentation, every op named.
    none = get_searcher("mcmc")(
        _tiny(tmp_path, "none", space="symmetry", export="randaugment", epochs=2)
    ).run()
    assert none.policy.stages == [] and set(none.policy.meta["left_out"]) == set(history["ops"]) - {
        "identity"
    }
    # The same search exported as the mixture it trained on is one stage.
    mix = (
        get_searcher("mcmc")(_tiny(tmp_path, "mix", space="symmetry", export="mixture", epochs=2))
        .run()
        .policy
    )
    assert len(mix.stages) == 1 and mix.meta["export"] == "mixture"


def test_prior_export_is_randaugments_point_less_what_the_task_does_not_allow(tmp_path):
    """export prior (the default): RandAugment's point (2 stages, M 9 of 31, every op applied) over the
    geometric and photometric ops the search met the constraint at, each at M or at its met top
    level where that is lower; flips, erasing and the drastic ops stay out even where allowed."""
    from autoaug.ops import get_op
    from autoaug.search.mcmc import met_ranges, prior_randaugment
    from autoaug.spaces import randaugment_ops

    # Tiny ranges: an op met at one level of 30 gets magnitude 1/30, not M's 0.3.
    stages = prior_randaugment({"rotate": 1, "solarize": 0, "hflip": 30, "identity": 30}, 30)
    assert [(e.op, e.magnitudes) for e in stages[0]] == [("rotate", (1 / 30,)), ("hflip", (0.0,))]
    assert prior_randaugment({"vflip": 0}, 30) == []

    cfg = _tiny(tmp_path, "prior", space="symmetry", epochs=2, epsilon=5.0)  # the default export
    policy = get_searcher("mcmc")(cfg).run().policy
    history = json.loads((tmp_path / "prior" / "history.json").read_text())
    half = history["epochs"][len(history["epochs"]) // 2 :]
    ranges = met_ranges(half, history["ops"], cfg.mcmc.levels, cfg.mcmc.epsilon)
    allowed = {o for o, n in ranges.items() if n > 0} & set(randaugment_ops("symmetry"))
    assert policy.meta["export"] == "prior" and policy.meta["n_ops"] == 2 and len(policy.stages) == 2
    assert {e.op for e in policy.stages[0]} == allowed and "hflip" not in allowed
    for e in policy.stages[0]:
        assert e.weight == 1.0 and e.prob == 1.0
        if get_op(e.op).has_magnitude:
            assert e.magnitudes == (min(0.3, ranges[e.op] / cfg.mcmc.levels),)
    with pytest.raises(ValueError, match="export must be one of"):
        get_searcher("mcmc")(_tiny(tmp_path, "bad", export="law"))
