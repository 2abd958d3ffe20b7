import numpy as np
import pytest
import torch

from vanishing.models import MODELS, SequenceModel, build_model
from vanishing.unroll import make_probe


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("length", [1, 7, 50])
def test_fused_and_unrolled_paths_agree(name, length):
    model = build_model(name, 3, 8, 2, num_layers=2, seed=1)
    x = torch.randn(4, length, 3, generator=torch.Generator().manual_seed(0))
    target = torch.randn(4, 2)
    ((model(x) - target) ** 2).sum().backward()
    fused = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out, hs = model.forward_unrolled(x)
    ((out - target) ** 2).sum().backward()
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)
    assert len(hs) == 2 and hs[1].shape == (4, length, 8)
    for a, p in zip(fused, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, atol=1e-5, rtol=1e-5)


def test_unrolled_path_reads_the_same_tensors():
    model = build_model("gru", 2, 4, 1)
    with torch.no_grad():
        model.core.weight_hh_l0.mul_(0.5)  # a training step changes the fused weights...
    x = torch.randn(1, 5, 2)
    torch.testing.assert_close(model.forward_unrolled(x)[0], model(x))  # ...the twin sees it


def test_token_input_every_step_readout_and_probes():
    model = build_model("lstm", 11, 6, 3, tokens=True, embedding_size=5, readout="all")
    x = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(0))
    probe = make_probe(torch.zeros(2, 9, 1), 6)
    out, _ = model.forward_unrolled(x, probes=[probe])
    assert out.shape == (2, 9, 3)
    out[:, -1].sum().backward()
    assert probe.grad.shape == (2, 9, 6) and probe.grad[:, 0].abs().sum() > 0
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)


def test_seed_determinism_without_global_rng():
    state = torch.random.get_rng_state()
    a, b = build_model("lstm", 3, 4, 2, seed=7), build_model("lstm", 3, 4, 2, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c = build_model("lstm", 3, 4, 2, seed=8)
    assert not torch.equal(a.core.weight_hh_l0, c.core.weight_hh_l0)


def test_presets():
    irnn = build_model("irnn", 2, 4, 1)
    torch.testing.assert_close(irnn.core.weight_hh_l0.detach(), torch.eye(4))
    lstm = build_model("lstm", 2, 4, 1)
    f = (lstm.core.bias_ih_l0 + lstm.core.bias_hh_l0)[4:8].detach()
    torch.testing.assert_close(f, torch.ones(4))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(core="transformer"), ValueError, "unknown core 'transformer'"),
        (dict(hidden_size=0), ValueError, "hidden_size must be a positive int"),
        (dict(readout="mean"), ValueError, "unknown readout 'mean'"),
        (dict(init="zeros"), ValueError, "unknown init scheme"),
    ],
)
def test_bad_construction(kwargs, err, match):
    args = dict(core="lstm", input_size=3, hidden_size=4, output_size=2) | kwargs
    with pytest.raises(err, match=match):
        SequenceModel(**args)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        build_model("rnn", 2, 2, 2)
    model = build_model("rnn_tanh", 3, 4, 2)
    with pytest.raises(ValueError, match="must be 3-D"):
        model(torch.randn(4, 3))
    with pytest.raises(ValueError, match="must have 3 features"):
        model(torch.randn(4, 5, 2))
    bad = torch.randn(2, 5, 3)
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="contains inf"):
        model(bad)
    with pytest.raises(ValueError, match="probes must be a list of 1"):
        model.forward_unrolled(torch.randn(2, 5, 3), probes=[])
    tok = build_model("gru", 5, 4, 2, tokens=True)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 5\), got \[0, 7\]"):
        tok(torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="2-D integer tensor"):
        tok(torch.randn(2, 3, 5))


def test_a_cell_with_no_fused_module_is_a_core_too():
    """rnn_linear has no torch.nn module: the model runs it as a CellStack, and the probe
    reads it: dL/dh_t = (W_hh^T)^(T-t) dL/dh_T for a linear RNN (closed form)."""
    from vanishing.models import CellStack, SequenceModel
    from vanishing.probe import hidden_gradients

    model = SequenceModel("rnn_linear", 3, 4, 2, seed=1).double()
    assert isinstance(model.core, CellStack)
    x = torch.randn(5, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    trace = hidden_gradients(model, x, lambda out: out.sum())
    w_hh = model.core.cells[0].weight_hh.detach()
    g = model.head.weight.detach().sum(0)  # dL/dh_T of out.sum() = sum of the readout rows
    want = [float((torch.linalg.matrix_power(w_hh.T, 8 - t) @ g).norm()) for t in range(9)]
    np.testing.assert_allclose(trace.norms, want, rtol=1e-10)
    assert list(trace.layers) == ["core.cells.0"]
    out, _ = model.forward_unrolled(x)
    torch.testing.assert_close(out, model(x))
