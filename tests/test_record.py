"""record() over a user's own forward, against references written here.

The reference for every pattern is a hand loop of torch's own nn.RNNCell / LSTMCell /
GRUCell sharing the model's weights, with a zero probe p_t added to every h_t, so that
dL/dp_t is the TOTAL dL/dh_t (through later steps too; for an LSTM with c_t held fixed),
or a closed form checked by central finite differences. Never the library's own output.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from _public_models import (
    MAX_LENGTH,
    CharGRUCell,
    CharRNN,
    DecoderRNN,
    EncoderRNN,
    IndRNN,
    PackedClassifier,
    RNNCellClassifier,
    RNNModel,
    Sequence,
    SOS_token,
    repackage_hidden,
)
from vanishing.probe import Trace, hidden_gradients, record

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _close(actual, expected, rtol=1e-10, atol=1e-14):
    torch.testing.assert_close(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# -- the reference: torch's own cells holding a fused module's weights -------------------------
def torch_cell(module, layer=0, reverse=False):
    """nn.RNNCell / LSTMCell / GRUCell with copies of one layer's (one direction's) weights."""
    sfx = f"_l{layer}" + "_reverse" * reverse
    w_ih = getattr(module, "weight_ih" + sfx)  # computed if parametrized
    args = (w_ih.shape[1], module.hidden_size)
    kw = {"bias": module.bias, "dtype": w_ih.dtype}
    if module.mode == "LSTM":
        cell = nn.LSTMCell(*args, **kw)
    elif module.mode == "GRU":
        cell = nn.GRUCell(*args, **kw)
    else:
        cell = nn.RNNCell(*args, nonlinearity=module.mode[4:].lower(), **kw)
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    with torch.no_grad():
        for name in names:
            getattr(cell, name).copy_(getattr(module, name + sfx))
    return cell


def cell_loop(cell, xs, state=None, shifts=None):
    """Run ``cell`` over ``xs`` (each (N, H_in)) in order, h_t <- h_t + p_t with a zero probe p_t.

    Returns (hs, probes, final state). ``shifts[t]`` (if given) is added to h_t too, for
    finite differences.
    """
    lstm = isinstance(cell, nn.LSTMCell)
    hs, probes = [], []
    for t, x_t in enumerate(xs):
        new = cell(x_t, state)
        h, c = new if lstm else (new, None)
        p = torch.zeros_like(h, requires_grad=True)
        probes.append(p)
        h = h + p if shifts is None else h + p + shifts[t]
        hs.append(h)
        state = (h, c) if lstm else h
    return hs, probes, state


def fused_loop(module, x, hx=None, shifts=None):
    """``module(x, hx)`` (a stock nn.RNN / LSTM / GRU in eval mode) as loops of torch cells.

    Returns (output, h_n or (h_n, c_n), probes) with probes = {"l0": [p_0 .. p_(T-1)],
    "l0_reverse": [...], ...} in real time order; ``shifts`` (same keys, real time order)
    are added to the h_t for finite differences.
    """
    lstm = module.mode == "LSTM"
    bdim = 0 if module.batch_first else 1
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(bdim)
        if hx is not None:
            hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
    seq = list(x.unbind(1 - bdim))
    h0, c0 = (None, None) if hx is None else hx if lstm else (hx, None)
    dirs = 2 if module.bidirectional else 1
    probes, h_n, c_n = {}, [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            name = f"l{layer}" + "_reverse" * d
            i = layer * dirs + d
            state = None if h0 is None else (h0[i], c0[i]) if lstm else h0[i]
            shift = None if shifts is None else shifts.get(name)
            if shift is not None and d:
                shift = shift[::-1]
            hs, ps, final = cell_loop(torch_cell(module, layer, bool(d)),
                                      seq[::-1] if d else seq, state, shift)
            probes[name] = ps[::-1] if d else ps
            outs.append(hs[::-1] if d else hs)
            h_n.append(final[0] if lstm else final)
            if lstm:
                c_n.append(final[1])
        seq = [torch.cat(h, -1) for h in zip(*outs, strict=True)] if dirs == 2 else outs[0]
    out, h_n = torch.stack(seq, 1 - bdim), torch.stack(h_n)
    c_n = torch.stack(c_n) if lstm else None
    if not batched:
        out, h_n = out.squeeze(bdim), h_n.squeeze(1)
        c_n = c_n.squeeze(1) if lstm else None
    return out, ((h_n, c_n) if lstm else h_n), probes


def probe_grads(loss, probes):
    """{name: [dL/dp_t]} for {name: [p_t]}."""
    flat = [p for ps in probes.values() for p in ps]
    grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    return {name: [torch.zeros_like(p) if g is None else g
                   for p, g in zip(ps, grads, strict=False)]
            for name, ps in probes.items()}


def total_norms(loss, probes, prefix=""):
    """{prefix + name: (T,) float64 batch-mean ||dL/dh_t||}: the reference curves."""
    return {prefix + name: torch.stack([g.double().norm(dim=-1).mean() for g in gs]).numpy()
            for name, gs in probe_grads(loss, probes).items()}


def aligned(per_sequence, T):
    """norms[T-1-k] = mean over sequences longer than k of ||dL/dh|| at step length-1-k."""
    norms = np.zeros(T)
    for k in range(T):
        norms[T - 1 - k] = np.mean([s[len(s) - 1 - k] for s in per_sequence if len(s) > k])
    return norms


def param_grads(model, run):
    """The parameter gradients of ``run()``'s loss, as a training step would leave them."""
    model.zero_grad()
    run().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


MODES = {
    "RNN_TANH": nn.RNN,
    "RNN_RELU": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "LSTM": nn.LSTM,
    "GRU": nn.GRU,
}


# -- 0. the reference itself: it is the fused module, its gradients are finite differences ----
@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_reference_loop_is_the_fused_module_and_matches_finite_differences(mode):
    torch.manual_seed(0)
    rnn = MODES[mode](input_size=3, hidden_size=4, num_layers=2, bidirectional=True).double()
    g = _gen(1)
    T, N = 5, 2
    x = torch.randn(T, N, 3, generator=g, dtype=F64)
    h0 = 0.5 * torch.randn(4, N, 4, generator=g, dtype=F64)
    hx = (h0, h0.flip(0)) if mode == "LSTM" else h0
    ref_out, ref_hid, probes = fused_loop(rnn, x, hx)
    out, hid = rnn(x, hx)
    torch.testing.assert_close(ref_out, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ref_hid, hid, rtol=1e-12, atol=1e-12)
    w = torch.randn(out.shape, generator=g, dtype=F64)
    grads = probe_grads((ref_out * w).sum(), probes)
    eps = 1e-6
    for name, t, n, i in [("l0", 0, 0, 1), ("l0_reverse", 4, 1, 3), ("l1", 2, 1, 0),
                          ("l1_reverse", 0, 0, 2), ("l0_reverse", 1, 0, 0)]:
        def loss_at(sign, name=name, t=t, n=n, i=i):
            shifts = {name: [torch.zeros(N, 4, dtype=F64) for _ in range(T)]}
            shifts[name][t][n, i] = sign * eps
            with torch.no_grad():
                return float((fused_loop(rnn, x, hx, shifts)[0] * w).sum())

        fd = (loss_at(1) - loss_at(-1)) / (2 * eps)
        assert fd == pytest.approx(float(grads[name][t][n, i]), rel=1e-6, abs=1e-10)


# -- stock fused modules, every option ----------------------------------------------------------
class Wrapped(nn.Module):
    """A user's model holding one fused module under the name ``rnn``."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, hx=None):
        return self.rnn(x, hx)


CONFIGS = {
    "one-layer-batch-first": {"batch_first": True},
    "two-layers-bidirectional-time-first-h0": {"num_layers": 2, "bidirectional": True,
                                               "h0": True},
    "two-layers-dropout-batch-first-h0": {"num_layers": 2, "dropout": 0.3, "batch_first": True,
                                          "h0": True},
    "unbatched-time-first": {"unbatched": True},
    "unbatched-batch-first-bidirectional-h0": {"unbatched": True, "batch_first": True,
                                               "bidirectional": True, "h0": True},
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mode", list(MODES))
def test_fused_module_every_option_equals_cell_loop(mode, config):
    torch.manual_seed(1)
    opts = dict(CONFIGS[config])
    unbatched, use_h0 = opts.pop("unbatched", False), opts.pop("h0", False)
    rnn = MODES[mode](input_size=3, hidden_size=5, **opts).double().eval()
    model = Wrapped(rnn)
    g = _gen(2)
    T, N, L, dirs = 7, 3, rnn.num_layers, 1 + rnn.bidirectional
    shape = (T, 3) if unbatched else (N, T, 3) if rnn.batch_first else (T, N, 3)
    x = torch.randn(shape, generator=g, dtype=F64)
    hx = None
    if use_h0:
        hshape = (L * dirs, 5) if unbatched else (L * dirs, N, 5)
        h0 = 0.5 * torch.randn(hshape, generator=g, dtype=F64)
        hx = (h0, 0.5 * torch.randn(hshape, generator=g, dtype=F64)) if mode == "LSTM" else h0
    with torch.no_grad():
        fused_out, _ = model(x, hx)
    w = torch.randn(fused_out.shape, generator=g, dtype=F64)

    def loss_of(out, hid):
        h_n = hid[0] if mode == "LSTM" else hid
        return (out * w).sum() + (h_n**2).sum()

    ref_out, ref_hid, probes = fused_loop(rnn, x, hx)
    torch.testing.assert_close(ref_out, fused_out, rtol=1e-12, atol=1e-12)
    ref = total_norms(loss_of(ref_out, ref_hid), probes, prefix="rnn.")

    with record(model) as rec:
        out, hid = model(x, hx)
        loss = loss_of(out, hid)
    torch.testing.assert_close(out, fused_out, rtol=1e-10, atol=1e-12)
    # what .view works on in the fused module's output works on the recorded one too
    assert out.is_contiguous() or not fused_out.is_contiguous()
    trace = rec.trace(loss)
    assert isinstance(trace, Trace)
    assert set(trace.layers) == set(ref)
    for name, norms in ref.items():
        _close(trace.layers[name], norms)
    assert trace.main_layer == f"rnn.l{L - 1}"
    assert isinstance(trace.norms, np.ndarray) and trace.norms.dtype == np.float64
    assert trace.norms.shape == (T,)
    _close(trace.norms, ref[f"rnn.l{L - 1}"])


def test_trace_after_users_own_backward_equals_trace_of_loss():
    torch.manual_seed(2)
    model = Wrapped(nn.GRU(3, 6, 2, batch_first=True).double())
    x = torch.randn(4, 9, 3, generator=_gen(3), dtype=F64)
    with record(model) as rec:
        out, _ = model(x)
        loss = out[:, -3:].pow(2).sum()
    first = rec.trace(loss)
    with record(model) as rec:
        out, _ = model(x)
        loss = out[:, -3:].pow(2).sum()
    loss.backward()
    second = rec.trace()
    ref_out, _, probes = fused_loop(model.rnn, x)
    ref = total_norms(ref_out[:, -3:].pow(2).sum(), probes, prefix="rnn.")
    for trace in (first, second):
        assert set(trace.layers) == {"rnn.l0", "rnn.l1"}
        _close(trace.layers["rnn.l0"], ref["rnn.l0"])
        _close(trace.norms, ref["rnn.l1"])


# -- 1. pytorch/examples word_language_model ---------------------------------------------------
def test_word_language_model_both_layers_hidden_passed_in():
    torch.manual_seed(0)
    ntokens, nhid, T, N = 11, 8, 6, 3
    model = RNNModel("LSTM", ntokens, nhid, nhid, 2, dropout=0.5, tie_weights=True)
    model = model.double().eval()
    criterion = nn.CrossEntropyLoss()
    data = torch.randint(ntokens, (2 * T + 1, N), generator=_gen(1))
    # main.py's train(): the previous batch's final state, detached, starts this one
    hidden = model.init_hidden(N)
    with torch.no_grad():
        _, hidden = model(data[:T], hidden)
    hidden = repackage_hidden(hidden)
    inp, targets = data[T:2 * T], data[T + 1:2 * T + 1].view(-1)

    ref_out, _, probes = fused_loop(model.rnn, model.encoder(inp), hidden)
    ref_loss = criterion(model.decoder(ref_out.reshape(-1, nhid)), targets)
    ref = total_norms(ref_loss, probes, prefix="rnn.")

    def plain():
        output, _ = model(inp, hidden)
        return criterion(output.view(-1, ntokens), targets)

    plain_grads = param_grads(model, plain)
    with record(model) as rec:
        output, new_hidden = model(inp, hidden)
        loss = criterion(output.view(-1, ntokens), targets)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    loss.backward()
    trace = rec.trace()
    assert set(trace.layers) == {"rnn.l0", "rnn.l1"} and trace.main_layer == "rnn.l1"
    _close(trace.layers["rnn.l0"], ref["rnn.l0"])
    _close(trace.layers["rnn.l1"], ref["rnn.l1"])
    _close(trace.norms, ref["rnn.l1"])
    # the user's backward trains the model as a plain run does (tied weights included)
    assert set(plain_grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in plain_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad,
                                   rtol=1e-10, atol=1e-12)
    # outside the block the model is itself again
    with torch.no_grad():
        torch.testing.assert_close(model(inp, hidden)[0], output.detach(), rtol=1e-10,
                                   atol=1e-12)


# -- 2. .view on a time-first output -----------------------------------------------------------
class TimeFirstTagger(nn.Module):
    """Tags every step; reshapes the time-first output with .view, as torch's docs do."""

    def __init__(self, rnn_type, bidirectional):
        super().__init__()
        self.hidden_size, self.num_directions = 6, 1 + bidirectional
        self.rnn = rnn_type(3, 6, num_layers=2, bidirectional=bidirectional)
        self.fc = nn.Linear(6 * self.num_directions, 4)

    def forward(self, x):
        output, _ = self.rnn(x)
        seq_len, batch = x.size(0), x.size(1)
        output = output.view(seq_len, batch, self.num_directions, self.hidden_size)
        return self.fc(output.view(seq_len * batch, -1))


@pytest.mark.parametrize("rnn_type, bidirectional", [(nn.RNN, False), (nn.GRU, True)])
def test_view_on_time_first_output(rnn_type, bidirectional):
    torch.manual_seed(3)
    model = TimeFirstTagger(rnn_type, bidirectional).double()
    g = _gen(4)
    T, N = 8, 3
    x = torch.randn(T, N, 3, generator=g, dtype=F64)
    tags = torch.randint(4, (T * N,), generator=g)
    ref_out, _, probes = fused_loop(model.rnn, x)
    ref = total_norms(F.cross_entropy(model.fc(ref_out.reshape(T * N, -1)), tags), probes,
                      prefix="rnn.")
    with record(model) as rec:
        loss = F.cross_entropy(model(x), tags)
    trace = rec.trace(loss)
    assert set(trace.layers) == set(ref)
    for name, norms in ref.items():
        _close(trace.layers[name], norms)
    _close(trace.norms, ref["rnn.l1"])


# -- 3. the PyTorch seq2seq tutorial: a decoder GRU called once per output word ----------------
@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_seq2seq_tutorial_decoder_per_word_and_encoder(teacher_forcing):
    torch.manual_seed(4)
    V_in, V_out, H, N, T_in = 9, 7, 6, 3, 5
    encoder = EncoderRNN(V_in, H).double().eval()
    decoder = DecoderRNN(H, V_out).double().eval()
    g = _gen(5)
    input_tensor = torch.randint(1, V_in, (N, T_in), generator=g)
    target_tensor = torch.randint(1, V_out, (N, MAX_LENGTH), generator=g)
    criterion = nn.NLLLoss()

    # hand reference: the encoder loop, then one decoder cell step per word
    _, hidden, enc_probes = fused_loop(encoder.gru, encoder.embedding(input_tensor))
    dec_input = torch.full((N, 1), SOS_token, dtype=torch.long)
    logits, dec_probes = [], []
    for i in range(MAX_LENGTH):
        out, hidden, p = fused_loop(decoder.gru, F.relu(decoder.embedding(dec_input)), hidden)
        dec_probes += p["l0"]
        logits.append(decoder.out(out))
        dec_input = (target_tensor[:, i].unsqueeze(1) if teacher_forcing
                     else logits[-1].argmax(-1).detach())
    log_probs = F.log_softmax(torch.cat(logits, 1), dim=-1)
    ref_loss = criterion(log_probs.view(-1, V_out), target_tensor.view(-1))
    ref = total_norms(ref_loss, {"encoder.gru.l0": enc_probes["l0"],
                                 "decoder.gru.l0": dec_probes})

    models = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
    with record(models) as rec:
        # the tutorial's train_epoch body
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden,
                                        target_tensor if teacher_forcing else None)
        loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)),
                         target_tensor.view(-1))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    trace = rec.trace(loss)
    assert set(trace.layers) == {"encoder.gru.l0", "decoder.gru.l0"}
    assert trace.main_layer == "decoder.gru.l0"
    assert trace.norms.shape == (MAX_LENGTH,)
    assert trace.layers["encoder.gru.l0"].shape == (T_in,)
    _close(trace.layers["decoder.gru.l0"], ref["decoder.gru.l0"])
    _close(trace.layers["encoder.gru.l0"], ref["encoder.gru.l0"])
    _close(trace.norms, ref["decoder.gru.l0"])


# -- 4. a packed bidirectional GRU classifier ---------------------------------------------------
def test_packed_bidirectional_gru_each_sequence_its_own_length():
    torch.manual_seed(5)
    V, T = 10, 7
    lengths = torch.tensor([5, 3, 7, 4, 6])
    N = len(lengths)
    model = PackedClassifier(V, 4, 5, 3).double()
    g = _gen(6)
    ids = torch.randint(1, V, (N, T), generator=g)
    ids[torch.arange(T) >= lengths[:, None]] = 0  # the pad index
    labels = torch.randint(3, (N,), generator=g)
    criterion = nn.CrossEntropyLoss()

    finals, probes = [], {}
    for n, length in enumerate(lengths.tolist()):  # each sequence alone, on its own length
        _, h_n, p = fused_loop(model.rnn, model.embedding(ids[n:n + 1, :length]))
        finals.append(torch.cat([h_n[-1], h_n[-2]], dim=-1))
        probes.update({(n, name): ps for name, ps in p.items()})
    grads = probe_grads(criterion(model.fc(torch.cat(finals)), labels), probes)
    ref = {f"rnn.{name}": aligned([torch.stack(grads[n, name]).norm(dim=-1).squeeze(1).numpy()
                                   for n in range(N)], T)
           for name in ("l0", "l0_reverse")}

    with record(model) as rec:
        loss = criterion(model(ids, lengths), labels)
    trace = rec.trace(loss)
    assert set(trace.layers) == {"rnn.l0", "rnn.l0_reverse"}
    assert trace.main_layer == "rnn.l0"
    _close(trace.layers["rnn.l0"], ref["rnn.l0"])
    _close(trace.layers["rnn.l0_reverse"], ref["rnn.l0_reverse"])
    _close(trace.norms, ref["rnn.l0"])


# -- 5. nn.LSTM with proj_size -----------------------------------------------------------------
def lstm_proj_loop(lstm, x):
    """A batch-first nn.LSTM with proj_size from its tensors: h_t = W_hr (o_t * tanh(c_t))."""
    N, P, H = x.shape[0], lstm.proj_size, lstm.hidden_size
    seq, probes = x.unbind(1), {}
    for layer in range(lstm.num_layers):
        w_ih, w_hh, b_ih, b_hh, w_hr = (getattr(lstm, f"{name}_l{layer}") for name in
                                        ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                         "weight_hr"))
        h, c, hs, probes[f"l{layer}"] = x.new_zeros(N, P), x.new_zeros(N, H), [], []
        for x_t in seq:
            i, f, g, o = (x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            p = x.new_zeros(N, P, requires_grad=True)
            h = (torch.sigmoid(o) * torch.tanh(c)) @ w_hr.T + p
            hs.append(h)
            probes[f"l{layer}"].append(p)
        seq = hs
    return torch.stack(seq, 1), probes


def test_lstm_with_proj_size():
    torch.manual_seed(6)
    lstm = nn.LSTM(3, 8, 2, proj_size=4, batch_first=True).double()
    head = nn.Linear(4, 2).double()
    model = nn.ModuleDict({"lstm": lstm, "head": head})
    g = _gen(7)
    x = torch.randn(3, 9, 3, generator=g, dtype=F64)
    y = torch.randn(3, 9, 2, generator=g, dtype=F64)
    ref_out, probes = lstm_proj_loop(lstm, x)
    with torch.no_grad():
        torch.testing.assert_close(ref_out, lstm(x)[0], rtol=1e-12, atol=1e-12)
    ref = total_norms(F.mse_loss(head(ref_out), y), probes, prefix="lstm.")
    with record(model) as rec:
        out, (h_n, c_n) = model["lstm"](x)
        loss = F.mse_loss(model["head"](out), y)
    assert h_n.shape == (2, 3, 4) and c_n.shape == (2, 3, 8)
    trace = rec.trace(loss)
    assert set(trace.layers) == {"lstm.l0", "lstm.l1"}
    _close(trace.layers["lstm.l0"], ref["lstm.l0"])
    _close(trace.norms, ref["lstm.l1"])


# -- 6. parametrized W_hh: orthogonal and weight_norm -------------------------------------------
class LastStepRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 6, batch_first=True)
        self.out = nn.Linear(6, 1)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.out(output[:, -1])


@pytest.mark.parametrize("parametrize", [parametrizations.orthogonal,
                                         parametrizations.weight_norm])
def test_parametrized_recurrent_weight(parametrize):
    torch.manual_seed(7)
    model = LastStepRegressor().double()
    parametrize(model.rnn, "weight_hh_l0")
    g = _gen(8)
    x = torch.randn(4, 10, 3, generator=g, dtype=F64)
    y = torch.randn(4, 1, generator=g, dtype=F64)
    ref_out, _, probes = fused_loop(model.rnn, x)
    ref_loss = F.mse_loss(model.out(ref_out[:, -1]), y)
    ref = total_norms(ref_loss, probes, prefix="rnn.")
    plain_grads = param_grads(model, lambda: F.mse_loss(model(x), y))
    with record(model) as rec:
        loss = F.mse_loss(model(x), y)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    loss.backward()
    trace = rec.trace()
    assert list(trace.layers) == ["rnn.l0"]
    _close(trace.norms, ref["rnn.l0"])
    for name, grad in plain_grads.items():  # the parametrization is trained as before
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad,
                                   rtol=1e-10, atol=1e-12)
    assert hasattr(model.rnn, "parametrizations")


# -- 7. user loops of stock cells ----------------------------------------------------------------
def test_time_sequence_prediction_lstm_cells_with_future():
    torch.manual_seed(8)
    model = Sequence(hidden=8).double()
    g = _gen(9)
    T, N, future = 8, 3, 2
    x = torch.sin(torch.randn(N, T, generator=g, dtype=F64))
    target = torch.randn(N, T + future, generator=g, dtype=F64)
    criterion = nn.MSELoss()

    # hand reference: Sequence.forward with a probe on h_t and h_t2
    zeros = [torch.zeros(N, 8, dtype=F64) for _ in range(4)]
    (h_t, c_t, h_t2, c_t2), outputs, probes = zeros, [], {"lstm1": [], "lstm2": []}

    def step(inp, h_t, c_t, h_t2, c_t2):
        h_t, c_t = model.lstm1(inp, (h_t, c_t))
        probes["lstm1"].append(torch.zeros_like(h_t, requires_grad=True))
        h_t = h_t + probes["lstm1"][-1]
        h_t2, c_t2 = model.lstm2(h_t, (h_t2, c_t2))
        probes["lstm2"].append(torch.zeros_like(h_t2, requires_grad=True))
        h_t2 = h_t2 + probes["lstm2"][-1]
        return h_t, c_t, h_t2, c_t2

    for input_t in x.split(1, dim=1):
        h_t, c_t, h_t2, c_t2 = step(input_t, h_t, c_t, h_t2, c_t2)
        outputs.append(model.linear(h_t2))
    for _ in range(future):
        h_t, c_t, h_t2, c_t2 = step(outputs[-1], h_t, c_t, h_t2, c_t2)
        outputs.append(model.linear(h_t2))
    ref = total_norms(criterion(torch.cat(outputs, 1), target), probes)

    with record(model) as rec:
        loss = criterion(model(x, future=future), target)
    trace = rec.trace(loss)
    assert set(trace.layers) == {"lstm1", "lstm2"} and trace.main_layer == "lstm2"
    assert trace.norms.shape == (T + future,)
    _close(trace.layers["lstm1"], ref["lstm1"])
    _close(trace.norms, ref["lstm2"])


def test_char_rnn_gru_cell_one_step_per_call():
    torch.manual_seed(9)
    n_chars, T, N = 12, 9, 4
    model = CharGRUCell(n_chars, 8).double()
    text = torch.randint(n_chars, (N, T + 1), generator=_gen(10))
    inp, target = text[:, :-1], text[:, 1:]
    criterion = nn.CrossEntropyLoss()

    hidden, ref_loss, probes = model.init_hidden(N), 0, []
    for c in range(T):
        hidden = model.cell(model.encoder(inp[:, c]), hidden)
        probes.append(torch.zeros_like(hidden, requires_grad=True))
        hidden = hidden + probes[-1]
        ref_loss = ref_loss + criterion(model.decoder(hidden), target[:, c])
    ref = total_norms(ref_loss, {"cell": probes})

    with record(model) as rec:
        hidden, loss = model.init_hidden(N), 0
        for c in range(T):
            output, hidden = model(inp[:, c], hidden)
            loss += criterion(output, target[:, c])
    trace = rec.trace(loss)
    assert list(trace.layers) == ["cell"] and trace.main_layer == "cell"
    _close(trace.norms, ref["cell"])


def test_rnn_cell_loop_classifier():
    torch.manual_seed(10)
    model = RNNCellClassifier(3, 7, 4).double()
    g = _gen(11)
    x = torch.randn(5, 10, 3, generator=g, dtype=F64)
    labels = torch.randint(4, (5,), generator=g)
    h, probes = torch.zeros(5, 7, dtype=F64), []
    for t in range(10):
        h = model.rnn_cell(x[:, t, :], h)
        probes.append(torch.zeros_like(h, requires_grad=True))
        h = h + probes[-1]
    ref = total_norms(F.cross_entropy(model.fc(h), labels), {"rnn_cell": probes})
    with record(model) as rec:
        loss = F.cross_entropy(model(x), labels)
    trace = rec.trace(loss)
    assert list(trace.layers) == ["rnn_cell"]
    _close(trace.norms, ref["rnn_cell"])


def test_char_rnn_time_first_gru_fed_one_character_per_call_float32():
    """spro/char-rnn.pytorch: a 2-layer nn.GRU called once per character, .view on its output."""
    torch.manual_seed(11)
    n_chars, T, N = 10, 8, 3
    model = CharRNN(n_chars, 6, n_chars, "gru", n_layers=2)
    text = torch.randint(n_chars, (N, T + 1), generator=_gen(12))
    inp, target = text[:, :-1], text[:, 1:]
    criterion = nn.CrossEntropyLoss()

    hidden, ref_loss, probes = model.init_hidden(N), 0, {"l0": [], "l1": []}
    for c in range(T):
        out, hidden, p = fused_loop(model.rnn, model.encoder(inp[:, c]).view(1, N, -1), hidden)
        for name in probes:
            probes[name] += p[name]
        ref_loss = ref_loss + criterion(model.decoder(out.view(N, -1)), target[:, c])
    ref = total_norms(ref_loss, probes, prefix="rnn.")

    with record(model) as rec:
        hidden, loss = model.init_hidden(N), 0
        for c in range(T):
            output, hidden = model(inp[:, c], hidden)
            loss += criterion(output.view(N, -1), target[:, c])
    trace = rec.trace(loss)
    assert set(trace.layers) == {"rnn.l0", "rnn.l1"} and trace.norms.shape == (T,)
    _close(trace.layers["rnn.l0"], ref["rnn.l0"], rtol=1e-5, atol=1e-8)
    _close(trace.norms, ref["rnn.l1"], rtol=1e-5, atol=1e-8)


# -- 8. a custom elementwise recurrence named through steps= -----------------------------------
def indrnn_reference(model, x, y):
    """(T, N, H) dL/dh_t for L = 0.5 ||head(h_t) - y_t||^2 summed, in closed form.

    h_t = relu(a_t), a_t = W x_t + b + u * h_(t-1); with d_t = (head(h_t) - y_t) W_head:
    dL/dh_t = d_t + u * relu'(a_(t+1)) * dL/dh_(t+1).
    """
    step = model.step
    with torch.no_grad():
        h, pres, hs = x.new_zeros(x.shape[0], step.hidden_size), [], []
        for x_t in x.unbind(1):
            pre = step.w(x_t) + step.u * h
            h = torch.relu(pre)
            pres.append(pre)
            hs.append(h)
        grads = [None] * len(hs)
        after = torch.zeros_like(h)
        for t in reversed(range(len(hs))):
            direct = (model.head(hs[t]) - y[:, t]) @ model.head.weight
            grads[t] = direct + after
            after = step.u * (pres[t] > 0) * grads[t]
    return torch.stack(grads)


def indrnn_loss(model, x, y, shift=None):
    """The loss by a hand loop, ``shift`` (t, n, i, eps) added to h_t[n, i]."""
    step = model.step
    h, loss = x.new_zeros(x.shape[0], step.hidden_size), 0.0
    for t, x_t in enumerate(x.unbind(1)):
        h = torch.relu(step.w(x_t) + step.u * h)
        if shift is not None and shift[0] == t:
            h = h.clone()
            h[shift[1], shift[2]] += shift[3]
        loss = loss + 0.5 * ((model.head(h) - y[:, t]) ** 2).sum()
    return loss


def _indrnn_setup(returns="tensor"):
    torch.manual_seed(12)
    model = IndRNN(3, 4, returns).double()
    g = _gen(13)
    x = torch.randn(2, 6, 3, generator=g, dtype=F64)
    y = torch.randn(2, 6, 1, generator=g, dtype=F64)
    return model, x, y


def test_indrnn_closed_form_matches_finite_differences():
    model, x, y = _indrnn_setup()
    ref = indrnn_reference(model, x, y)
    eps = 1e-6
    with torch.no_grad():
        for t in range(6):
            for n in range(2):
                for i in range(4):
                    fd = (indrnn_loss(model, x, y, (t, n, i, eps))
                          - indrnn_loss(model, x, y, (t, n, i, -eps))) / (2 * eps)
                    assert float(fd) == pytest.approx(float(ref[t, n, i]), rel=1e-6,
                                                      abs=1e-9)
    assert bool((ref != 0).any())


SELECTORS = {
    "module-only": ("tensor", None),
    "none-takes-output-0": ("tuple", None),
    "int-index": ("index1", 1),
    "str-key": ("dict", "h"),
    "callable": ("named", lambda out: out.hidden),
}


@pytest.mark.parametrize("selector", list(SELECTORS))
def test_custom_step_named_in_steps(selector):
    returns, hidden = SELECTORS[selector]
    model, x, y = _indrnn_setup(returns)
    ref = indrnn_reference(model, x, y).norm(dim=-1).mean(1).numpy()
    steps = [model.step] if selector == "module-only" else [(model.step, hidden)]
    with record(model, steps=steps) as rec:
        loss = 0.5 * ((model(x) - y) ** 2).sum()
    torch.testing.assert_close(loss, indrnn_loss(model, x, y), rtol=1e-12, atol=1e-12)
    trace = rec.trace(loss)
    assert list(trace.layers) == ["step"] and trace.main_layer == "step"
    _close(trace.norms, ref)


def test_hidden_gradients_passes_steps():
    model, x, y = _indrnn_setup()
    ref = indrnn_reference(model, x, y).norm(dim=-1).mean(1).numpy()
    trace = hidden_gradients(model, x, lambda out: 0.5 * ((out - y) ** 2).sum(),
                             steps=[model.step])
    _close(trace.norms, ref)


# -- 11. a padded batch, lengths= --------------------------------------------------------------
class PaddedLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        output, _ = self.lstm(x)
        return output


def _padded_setup():
    torch.manual_seed(13)
    model = PaddedLSTM().double()
    g = _gen(14)
    lengths = torch.tensor([4, 8, 2, 6])
    T, N = 8, 4
    x = torch.randn(N, T, 3, generator=g, dtype=F64)
    x[torch.arange(T) >= lengths[:, None]] = 0.0
    y = torch.randint(2, (N,), generator=g)

    def loss_of(output):  # each sequence read at its own last step
        return F.cross_entropy(model.fc(output[torch.arange(N), lengths - 1]), y)

    lasts, probes = [], {}
    for n, length in enumerate(lengths.tolist()):  # each sequence alone, on its own length
        out, _, p = fused_loop(model.lstm, x[n:n + 1, :length])
        lasts.append(out[:, -1])
        probes[n] = p["l0"]
    grads = probe_grads(F.cross_entropy(model.fc(torch.cat(lasts)), y), probes)
    ref = aligned([torch.stack(grads[n]).norm(dim=-1).squeeze(1).numpy() for n in range(N)], T)
    return model, x, lengths, loss_of, ref


def test_padded_batch_lengths_aligns_each_sequence_at_its_last_step():
    model, x, lengths, loss_of, ref = _padded_setup()
    with record(model, lengths=lengths) as rec:
        loss = loss_of(model(x))
    trace = rec.trace(loss)
    assert list(trace.layers) == ["lstm.l0"] and trace.norms.shape == (8,)
    _close(trace.norms, ref)
    # every step has a sequence there, so no summary raises
    assert 0 <= trace.horizon() <= 7
    assert trace.relative()[-1] == pytest.approx(1.0)
    assert np.isfinite(trace.decay_rate())


def test_hidden_gradients_with_lengths():
    model, x, lengths, loss_of, ref = _padded_setup()
    trace = hidden_gradients(model, x, loss_of, lengths=lengths)
    _close(trace.norms, ref)


# -- hidden_gradients' default loss -------------------------------------------------------------
class Tagger(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=batch_first)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.fc(output)


@pytest.mark.parametrize("batch_first", [True, False])
def test_hidden_gradients_default_loss_is_the_last_steps_output(batch_first):
    torch.manual_seed(14)
    model = Tagger(batch_first).double()
    x = torch.randn((3, 7, 3) if batch_first else (7, 3, 3), generator=_gen(15), dtype=F64)
    ref_out, _, probes = fused_loop(model.rnn, x)
    last = model.fc(ref_out[:, -1] if batch_first else ref_out[-1])
    ref = total_norms(last.sum(), probes, prefix="rnn.")
    trace = hidden_gradients(model, x)
    assert list(trace.layers) == ["rnn.l0"] and trace.norms.shape == (7,)
    _close(trace.norms, ref["rnn.l0"])


def test_hidden_gradients_forward_needing_more_arguments_names_record():
    model = RNNModel("GRU", 11, 8, 8, 1, dropout=0.0)
    tokens = torch.randint(11, (6, 2), generator=_gen(16))
    with pytest.raises(TypeError, match="record"):
        hidden_gradients(model, tokens)


# -- 10. errors ----------------------------------------------------------------------------------
def _one_line(info):
    assert "\n" not in str(info.value)


def test_error_no_recurrent_step_names_steps():
    model, x, y = _indrnn_setup()  # a custom step record cannot know of
    with pytest.raises((ValueError, TypeError), match="steps=") as info:
        with record(model) as rec:
            loss = 0.5 * ((model(x) - y) ** 2).sum()
        rec.trace(loss)
    _one_line(info)
    mlp = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with pytest.raises((ValueError, TypeError), match="steps=") as info:
        with record(mlp) as rec:
            loss = mlp(x).sum()
        rec.trace(loss)
    _one_line(info)


def test_error_steps_entry_not_a_submodule():
    model, x, y = _indrnn_setup()
    stranger = nn.GRUCell(3, 4).double()
    with pytest.raises((ValueError, TypeError)) as info:
        with record(model, steps=[stranger]) as rec:
            loss = 0.5 * ((model(x) - y) ** 2).sum()
        rec.trace(loss)
    _one_line(info)


@pytest.mark.parametrize("selector", [lambda out: out[0].shape, lambda out: None, 5],
                         ids=["shape", "none", "index-out-of-range"])
def test_error_hidden_selector_not_a_tensor(selector):
    model, x, y = _indrnn_setup("tuple")
    with pytest.raises((ValueError, TypeError)) as info:
        with record(model, steps=[(model.step, selector)]) as rec:
            loss = 0.5 * ((model(x) - y) ** 2).sum()
        rec.trace(loss)
    _one_line(info)


@pytest.mark.parametrize("lengths", [[4, 8, 2], [4, 8, 0, 6], [4, 9, 2, 6]],
                         ids=["wrong-count", "zero", "longer-than-T"])
def test_error_lengths_do_not_match_the_batch(lengths):
    model, x, _, loss_of, _ = _padded_setup()
    with pytest.raises((ValueError, TypeError)) as info:
        with record(model, lengths=torch.tensor(lengths)) as rec:
            loss = model(x).sum()
        rec.trace(loss)
    _one_line(info)
