"""Cells unrolled against the fused torch.nn modules (an independent implementation)."""

import pytest
import torch
from torch import nn

from vanishing.cells import ElmanCell, GRUCell, LSTMCell, make_cell, twin
from vanishing.unroll import unroll

FUSED = {
    "rnn_tanh": lambda i, h: nn.RNN(i, h, nonlinearity="tanh", batch_first=True),
    "rnn_relu": lambda i, h: nn.RNN(i, h, nonlinearity="relu", batch_first=True),
    "lstm": lambda i, h: nn.LSTM(i, h, batch_first=True),
    "gru": lambda i, h: nn.GRU(i, h, batch_first=True),
}


def _grads(params):
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("name", list(FUSED))
@pytest.mark.parametrize("length", [1, 7, 50])
def test_standalone_cell_matches_fused_module(name, length):
    """A cell with its own parameters, copied into torch.nn: outputs and gradients agree."""
    torch.manual_seed(0)
    cell = make_cell(name, 3, 6)
    fused = FUSED[name](3, 6)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(fused, n + "_l0").copy_(getattr(cell, n))
    x = torch.randn(4, length, 3)
    target = torch.randn(4, length, 6)

    hs, final = unroll(cell, x)
    ((hs - target) ** 2).sum().backward()
    ref_hs, ref_final = fused(x)
    ((ref_hs - target) ** 2).sum().backward()

    torch.testing.assert_close(hs, ref_hs, atol=1e-5, rtol=1e-5)
    if name == "lstm":
        torch.testing.assert_close(final[1], ref_final[1][0], atol=1e-5, rtol=1e-5)
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(
            getattr(cell, n).grad, getattr(fused, n + "_l0").grad, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_twin_shares_tensors_and_gradients(name):
    fused = FUSED[name](3, 5)
    cell = twin(fused)
    assert cell.weight_hh is fused.weight_hh_l0
    x = torch.randn(2, 9, 3)
    unroll(cell, x)[0].sum().backward()
    via_twin = _grads(fused.parameters())
    fused.zero_grad()
    fused(x)[0].sum().backward()
    for a, b in zip(via_twin, _grads(fused.parameters()), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_twin_of_later_layer_and_reverse_direction():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    assert twin(lstm, layer=1).weight_ih is lstm.weight_ih_l1
    assert twin(lstm, layer=0, reverse=True).weight_hh is lstm.weight_hh_l0_reverse
    with pytest.raises(ValueError, match="layer must be in"):
        twin(lstm, layer=2)
    with pytest.raises(ValueError, match="bidirectional"):
        twin(nn.GRU(2, 2), reverse=True)
    with pytest.raises(TypeError, match="expected torch.nn.RNN"):
        twin(nn.Linear(2, 2))


def test_one_step_forward_equals_torch_cells():
    torch.manual_seed(1)
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    for ours, theirs, state in [
        (LSTMCell(3, 5), nn.LSTMCell(3, 5), (h, c)),
        (GRUCell(3, 5), nn.GRUCell(3, 5), (h,)),
        (ElmanCell(3, 5, "relu"), nn.RNNCell(3, 5, nonlinearity="relu"), (h,)),
    ]:
        theirs.load_state_dict(ours.state_dict())
        out = ours(x, state)
        ref = theirs(x, state if len(state) == 2 else state[0])
        ref = ref if isinstance(ref, tuple) else (ref,)
        for a, b in zip(out, ref, strict=True):
            torch.testing.assert_close(a, b)


def test_linear_cell_has_no_squashing():
    cell = ElmanCell(2, 3, "linear")
    x, h = torch.randn(1, 2), torch.randn(1, 3)
    expected = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    torch.testing.assert_close(cell(x, (h,))[0], expected)


@pytest.mark.parametrize(
    "args, err, match",
    [
        (("rnn_tanh", 3, 0), ValueError, "hidden_size must be a positive int, got 0"),
        (("rnn_tanh", 3, -2), ValueError, "hidden_size must be a positive int"),
        (("rnn_tanh", 0, 4), ValueError, "input_size must be a positive int"),
        (("rnn_tanh", 3, 2.5), TypeError, "hidden_size must be an int, got float"),
        (("lstn", 3, 4), ValueError, "unknown cell 'lstn'; expected one of"),
    ],
)
def test_bad_construction(args, err, match):
    with pytest.raises(err, match=match):
        make_cell(*args)


def test_unknown_nonlinearity():
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        ElmanCell(2, 2, "sigmoid")
