"""The MCMC searcher: acceptance rule, the chain's law, dual updates, determinism, resume."""

import json

import pytest
import torch

from autoaug.search import SearchConfig, get_searcher
from autoaug.search.mcmc import MCMCStep, StateSpace, mh_step, per_op_dual_step


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
    """Chains driven by MCMCStep's own proposal on a fixed loss table end up ∝ the loss."""
    cfg = SearchConfig(space="standard", levels=4, constraint="single", seed=0)
    step = MCMCStep(cfg)
    space: StateSpace = step.states
    k, lv = space.size, space.levels
    table = torch.rand(k, lv, 2, generator=torch.Generator().manual_seed(1)) * 3 + 0.05

    def loss_of(s):
        return table[s["op"], s["level"], (s["sign"] > 0).long()]

    n = 20_000
    state = step._init_slots(n)
    loss = loss_of(state)
    for _ in range(60):
        proposal = step._propose(state)
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


def test_per_op_chains_keep_their_op_and_spread_evenly():
    step = MCMCStep(SearchConfig(space="symmetry", constraint="per_op"))
    state = step._init_slots(230)
    assert torch.bincount(state["op"], minlength=step.states.size).tolist() == [10] * step.states.size
    assert torch.equal(step._propose(state)["op"], state["op"])


def test_single_dual_update():
    cfg = SearchConfig(constraint="single", dual_lr=0.1, epsilon=0.5)
    lam = torch.zeros(1, dtype=torch.float64)
    lam = (lam + cfg.dual_lr * (torch.tensor(1.5) - cfg.epsilon)).clamp(min=0)
    assert lam.item() == pytest.approx(0.1)


def test_per_op_dual_step_reaches_the_resilient_equilibrium():
    cfg = SearchConfig(dual_lr=0.05, relax_lr=0.05, relax_alpha=2.0, epsilon=0.3)
    lam = torch.zeros(3, dtype=torch.float64)
    relax = torch.zeros(3, dtype=torch.float64)
    op = torch.tensor([0, 0, 1, 1])  # op 2 never appears: its variables stay put
    loss = torch.tensor([1.3, 1.3, 0.1, 0.1])  # op 0 cannot meet ε; op 1 meets it
    for _ in range(5000):
        lam, relax = per_op_dual_step(lam, relax, op, loss, cfg)
    # Op 0: λ = α·u and ℓ − ε − u = 0, so u = 1.0 and λ = 2.0.
    assert relax[0].item() == pytest.approx(1.0, abs=1e-3)
    assert lam[0].item() == pytest.approx(2.0, abs=1e-3)
    assert lam[1].item() == 0 and relax[1].item() == 0
    assert lam[2].item() == 0 and relax[2].item() == 0


def _tiny(tmp_path, name, **kw):
    base = dict(dataset="glyphs", train_size=256, val_size=64, batch_size=64, epochs=2, levels=5, progress=False,
                space="standard", out=str(tmp_path / name), seed=3)  # fmt: skip
    base.update(kw)
    return SearchConfig(**base)


def test_same_seed_same_policy(tmp_path):
    a = get_searcher("mcmc")(_tiny(tmp_path, "a")).run()
    b = get_searcher("mcmc")(_tiny(tmp_path, "b")).run()
    assert a.policy.to_dict() == b.policy.to_dict()
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert ha == hb
    for f in ("policy.json", "history.json", "metrics.jsonl", "config.yaml", "model.pt", "checkpoint.pt"):
        assert (tmp_path / "a" / f).is_file(), f
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
    assert state["epoch"] == 1 and "slots" in state["step"]
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
    """The policy leaves out every op whose constraint stays unmet, falling loss or not."""
    from autoaug.search.mcmc import unmet_ops

    series = {"hflip": [1.6, 1.8, 1.9, 1.8], "scale": [1.9, 1.6, 1.2, 1.0], "rotate": [1.2, 0.6, 0.4, 0.3]}
    epochs, ops = _history(series, {"hflip": 1.2, "scale": 0.55, "rotate": 0.0})
    assert [name for name, _ in unmet_ops(epochs, ops, 0.6)] == ["hflip", "scale"]

    cfg = SearchConfig(dataset="glyphs", train_size=64, space="symmetry", progress=False, out=str(tmp_path))
    step = MCMCStep(cfg)
    k = step.states.size
    relax = [0.0] * k
    relax[step.states.ops.index("hflip")] = 1.2
    relax[step.states.ops.index("scale")] = 0.5
    lam = [0.3] * k
    loss = {o: 0.5 for o in step.states.ops} | {"hflip": 1.8, "scale": 1.0}
    step.history = [{"lambda": lam, "relaxation": relax, "op_aug_loss": loss, "op_proposal_loss": loss,
                     "histogram": [[1.0] * cfg.levels for _ in range(k)], "acceptance": 0.5}]  # fmt: skip
    policy = step.learned_policy()
    names = {e.op for e in policy.stages[0]}
    assert "hflip" not in names and "scale" not in names and "rotate" in names
    assert policy.meta["left_out"] == ["hflip", "scale"]


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
    assert not ("no op seems to break the task" in text and "left out of the policy" in text), text


def test_fused_pass_gives_the_same_losses_and_gradients(tmp_path):
    """One forward over the clean and augmented images computes what two separate ones do (BatchNorm
    in eval mode, so that its statistics do not depend on the batch), and the gradients agree."""
    from autoaug.train import Trainer

    results = []
    for fused in (False, True):
        cfg = _tiny(tmp_path, f"fused{fused}")
        cfg.fused, cfg.chain_length = fused, 1
        step = MCMCStep(cfg)
        torch.manual_seed(0)
        trainer = Trainer(cfg, step=step)
        trainer.net.eval()
        images, labels = next(trainer.batches())
        total, stats = step.loss(trainer, images, labels)
        total.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.net.parameters() if p.grad is not None])
        results.append((total.detach(), stats, grads, step.slots, step.op_loss.clone()))
    (t0, s0, g0, slots0, ol0), (t1, s1, g1, slots1, ol1) = results
    assert torch.allclose(t0, t1, atol=1e-5)
    assert s0["clean_loss"] == pytest.approx(s1["clean_loss"], abs=1e-5)
    assert s0["aug_loss"] == pytest.approx(s1["aug_loss"], abs=1e-5)
    assert torch.allclose(g0, g1, atol=1e-5) and g0.abs().sum() > 0
    assert all(torch.equal(slots0[k], slots1[k]) for k in slots0)  # the sampler made the same moves
    assert torch.allclose(ol0, ol1, atol=1e-5)
