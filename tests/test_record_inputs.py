"""input_gradients: ||dL/dx_t|| per step, against autograd on a leaf made by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vanishing.probe import input_gradients

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _close(actual, expected, rtol=1e-10, atol=1e-14):
    torch.testing.assert_close(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def leaf_norms(forward, x, loss, time_dim):
    """Batch-mean ||dL/dx_t|| over the feature dimension, x a leaf made here."""
    leaf = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(forward(leaf)), [leaf])
    return g.norm(dim=-1).mean(dim=1 - time_dim).numpy()


# -- 9. transformers, time first and batch first -----------------------------------------------
class TransformerReader(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                           batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)
        self.batch_first = batch_first

    def forward(self, src):
        out = self.encoder(src)
        return self.head(out[:, -1] if self.batch_first else out[-1])


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_trace_is_over_time(batch_first):
    torch.manual_seed(0)
    model = TransformerReader(batch_first).double().eval()
    g = _gen(1)
    T, N = 9, 4  # T != N: a trace over the batch would have the wrong length
    x = torch.randn((N, T, 8) if batch_first else (T, N, 8), generator=g, dtype=F64)
    w = torch.randn(N, 3, generator=g, dtype=F64)

    def loss(out):
        return (out * w).sum()

    ref = leaf_norms(model, x, loss, time_dim=1 if batch_first else 0)
    trace = input_gradients(model, x, loss)
    assert trace.norms.shape == (T,) and trace.norms.dtype == np.float64
    _close(trace.norms, ref)


class LSTMReader(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=batch_first)

    def forward(self, x):
        output, _ = self.lstm(x)
        return output


@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_module_tells_the_time_dimension(batch_first):
    torch.manual_seed(1)
    model = LSTMReader(batch_first).double()
    g = _gen(2)
    T, N = 7, 3
    x = torch.randn((N, T, 3) if batch_first else (T, N, 3), generator=g, dtype=F64)
    w = torch.randn((N, T, 5) if batch_first else (T, N, 5), generator=g, dtype=F64)

    def loss(out):
        return (out * w).sum()

    ref = leaf_norms(model, x, loss, time_dim=1 if batch_first else 0)
    trace = input_gradients(model, x, loss)
    assert trace.norms.shape == (T,)
    _close(trace.norms, ref)


class Conv1dReader(nn.Module):
    """Reads (batch, time, features), or (time, batch, features) when ``time_first``, with a
    convolution over time: no module says which layout it is."""

    def __init__(self, time_first=False):
        super().__init__()
        self.time_first = time_first
        self.conv = nn.Conv1d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        x = x.permute(1, 2, 0) if self.time_first else x.transpose(1, 2)  # (N, C, T)
        return self.head(torch.tanh(self.conv(x)).mean(-1))


@pytest.mark.parametrize("time_dim", [1, 0])
def test_time_dim_given_explicitly(time_dim):
    torch.manual_seed(2)
    model = Conv1dReader(time_first=time_dim == 0).double()
    g = _gen(3)
    x = torch.randn((10, 3, 3) if time_dim == 0 else (3, 10, 3), generator=g, dtype=F64)

    def loss(out):
        return (out**2).sum()

    ref = leaf_norms(model, x, loss, time_dim=time_dim)
    trace = input_gradients(model, x, loss, time_dim=time_dim)
    assert trace.norms.shape == (10,)
    _close(trace.norms, ref)


def test_ambiguous_layout_is_an_error_naming_time_dim():
    model = Conv1dReader().double()
    x = torch.randn(3, 10, 3, generator=_gen(4), dtype=F64)
    with pytest.raises(ValueError, match="time_dim") as info:
        input_gradients(model, x, lambda out: out.sum())
    assert "\n" not in str(info.value)


# -- token ids: the gradient at the embedding's output -------------------------------------------
class TokenGRU(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.embedding = nn.Embedding(13, 6)
        self.gru = nn.GRU(6, 5, batch_first=batch_first)
        self.fc = nn.Linear(5, 2)

    def forward(self, ids):
        output, hidden = self.gru(self.embedding(ids))
        return self.fc(hidden[-1])


@pytest.mark.parametrize("batch_first", [True, False])
def test_token_ids_at_the_embedding_output(batch_first):
    torch.manual_seed(3)
    model = TokenGRU(batch_first).double()
    g = _gen(5)
    T, N = 8, 3
    ids = torch.randint(13, (N, T) if batch_first else (T, N), generator=g)
    y = torch.randint(2, (N,), generator=g)

    def loss(out):
        return F.cross_entropy(out, y)

    # by hand: the embedding output as a leaf, the rest of forward after it
    emb = model.embedding(ids).detach().requires_grad_(True)
    (g_emb,) = torch.autograd.grad(loss(model.fc(model.gru(emb)[1][-1])), [emb])
    ref = g_emb.norm(dim=-1).mean(dim=0 if batch_first else 1).numpy()

    trace = input_gradients(model, ids, loss, at=model.embedding)
    assert list(trace.layers) == ["embedding"]
    assert trace.norms.shape == (T,)
    _close(trace.norms, ref)
    _close(trace.layers["embedding"], ref)
