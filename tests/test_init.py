import numpy as np
import pytest
import torch
from torch import nn

from vanishing.cells import make_cell
from vanishing.init import initialize, spectral_radius


def _blocks(w, gates):
    h = w.shape[1]
    return w.detach().view(gates, h, h)


@pytest.mark.parametrize("name, gates", [("rnn_tanh", 1), ("lstm", 4), ("gru", 3)])
def test_orthogonal_blocks(name, gates):
    g = torch.Generator().manual_seed(1)
    cell = initialize(make_cell(name, 3, 6), "orthogonal", generator=g)
    for b in _blocks(cell.weight_hh, gates):
        torch.testing.assert_close(b @ b.T, torch.eye(6), atol=1e-5, rtol=0)


def test_identity_irnn():
    rnn = nn.RNN(3, 5, nonlinearity="relu")
    initialize(rnn, "identity")
    torch.testing.assert_close(rnn.weight_hh_l0.detach(), torch.eye(5))
    assert rnn.bias_ih_l0.abs().max() == 0 and rnn.bias_hh_l0.abs().max() == 0
    assert 0 < rnn.weight_ih_l0.abs().max() < 0.01


@pytest.mark.parametrize("rho", [0.5, 1.0, 3.0])
def test_radius_scaling(rho):
    cell = initialize(make_cell("rnn_tanh", 2, 16), "default", radius=rho)
    eig = torch.linalg.eigvals(cell.weight_hh.detach().double()).abs().max().item()
    assert eig == pytest.approx(rho, rel=1e-5)
    assert spectral_radius(cell.weight_hh) == pytest.approx(rho, rel=1e-5)


def test_default_bounds_and_forget_bias():
    lstm = nn.LSTM(3, 16, num_layers=2)
    initialize(lstm, "default", forget_bias=1.0)
    for layer in (0, 1):
        w = getattr(lstm, f"weight_hh_l{layer}")
        assert w.abs().max() <= 0.25 and w.abs().max() > 0.2
        b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        torch.testing.assert_close(b[16:32].detach(), torch.ones(16))


def test_same_generator_same_weights_and_global_rng_untouched():
    before = torch.random.get_rng_state()
    a = initialize(make_cell("gru", 2, 4), "orthogonal", generator=torch.Generator().manual_seed(5))
    b = initialize(make_cell("gru", 2, 4), "orthogonal", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a.weight_hh, b.weight_hh)
    # make_cell draws from the global RNG for its defaults, initialize() must not
    torch.random.set_rng_state(before)
    initialize(a, "orthogonal", generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_bad_arguments():
    cell = make_cell("rnn_tanh", 2, 4)
    with pytest.raises(ValueError, match="unknown init scheme 'xavier'"):
        initialize(cell, "xavier")
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        initialize(cell, radius=-1.0)
    with pytest.raises(ValueError, match="contains no recurrent layer"):
        initialize(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="square matrix"):
        spectral_radius(torch.zeros(2, 3))


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_chrono_biases_lie_in_the_stated_range(core):
    """Tallec & Ollivier 2018: keep-gate bias in [log 1, log(T_max - 1)]; LSTM b_i = -b_f;
    b_hh zero on those rows (torch adds the two biases)."""
    from vanishing.models import SequenceModel

    t_max, h = 50, 64
    m = SequenceModel(core, 3, h, 1, init="chrono", max_length=t_max, seed=2)
    b_ih, b_hh = m.core.bias_ih_l0.detach(), m.core.bias_hh_l0.detach()
    keep = slice(h, 2 * h)  # LSTM gates i, f, g, o; GRU gates r, z, n: block 1 either way
    b = b_ih[keep]
    assert float(b.min()) >= 0.0 and float(b.max()) <= np.log(t_max - 1) + 1e-6
    assert float(b.max()) > np.log(t_max - 1) / 2  # spread over the range, not all near 0
    assert torch.equal(b_hh[keep], torch.zeros(h))
    if core == "lstm":
        torch.testing.assert_close(b_ih[:h], -b)
        assert torch.equal(b_hh[:h], torch.zeros(h))
    with pytest.raises(ValueError, match="max_length"):
        SequenceModel(core, 3, h, 1, init="chrono")
    with pytest.raises(ValueError, match="gated cell"):
        SequenceModel("rnn_tanh", 3, h, 1, init="chrono", max_length=t_max)


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_chrono_through_build_model_and_train_is_not_overwritten_by_the_preset(core):
    """build_model's LSTM preset (forget bias 1) must not overwrite chrono's forget bias
    (it did: chrono's b_i = -b_f stayed, so the gates were f = sigmoid(1), i ~ 0)."""
    from vanishing.models import build_model
    from vanishing.train import TrainConfig, build

    t_max, h = 500, 32
    models = [build_model(core, 3, h, 1, init="chrono", max_length=t_max, seed=1),
              build(TrainConfig(task="adding", model=core, length=t_max, hidden_size=h,
                                init="chrono"))[1]]
    for m in models:
        b = (m.core.bias_ih_l0 + m.core.bias_hh_l0).detach()[h:2 * h]  # the keep gate
        assert float(b.min()) >= 0.0 and float(b.max()) <= np.log(t_max - 1) + 1e-6
        assert float(b.median()) > 3.0  # log U[1, 499]: median log 250 = 5.5, not 1
    with pytest.raises(ValueError, match="forget_bias=2.*chrono.*give one"):
        build_model(core, 3, h, 1, init="chrono", max_length=t_max, forget_bias=2.0)
