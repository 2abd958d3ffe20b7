"""Recurrent models as their public authors write them, for tests/test_record*.py.

Each class keeps its source's structure (names, call pattern, ``.view`` calls, hidden
state handling); only sizes are parameters, ``super()`` is modernised, and globals such
as ``device`` are dropped so the tests run small and on the CPU.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


# -- pytorch/examples word_language_model/model.py (the 2018-2020 version) ---------------------
class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)

        # "Using the Output Embedding to Improve Language Models" (Press & Wolf 2016)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight

        self.init_weights()

        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        self.encoder.weight.data.uniform_(-initrange, initrange)
        self.decoder.bias.data.zero_()
        self.decoder.weight.data.uniform_(-initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output.view(output.size(0) * output.size(1), output.size(2)))
        return decoded.view(output.size(0), output.size(1), decoded.size(1)), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        else:
            return weight.new_zeros(self.nlayers, bsz, self.nhid)


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    else:
        return tuple(repackage_hidden(v) for v in h)


# -- PyTorch tutorial "NLP From Scratch: Translation with a Sequence to Sequence Network" ------
SOS_token = 0
MAX_LENGTH = 6


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.hidden_size = hidden_size

        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class DecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []

        for i in range(MAX_LENGTH):
            decoder_output, decoder_hidden = self.forward_step(decoder_input, decoder_hidden)
            decoder_outputs.append(decoder_output)

            if target_tensor is not None:
                # Teacher forcing: Feed the target as the next input
                decoder_input = target_tensor[:, i].unsqueeze(1)  # Teacher forcing
            else:
                # Without teacher forcing: use its own predictions as the next input
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()  # detach from history as input

        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
        return decoder_outputs, decoder_hidden, None  # `None` for consistency in training

    def forward_step(self, input, hidden):
        output = self.embedding(input)
        output = F.relu(output)
        output, hidden = self.gru(output, hidden)
        output = self.out(output)
        return output, hidden


# -- a packed bidirectional GRU text classifier (bentrevett/pytorch-sentiment-analysis style) --
class PackedClassifier(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_dim, output_dim, pad_index=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.rnn = nn.GRU(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(hidden_dim * 2, output_dim)

    def forward(self, ids, length):
        embedded = self.embedding(ids)
        packed_embedded = pack_padded_sequence(embedded, length, batch_first=True,
                                               enforce_sorted=False)
        packed_output, hidden = self.rnn(packed_embedded)
        # hidden = [n layers * n directions, batch size, hidden dim]
        hidden = torch.cat([hidden[-1], hidden[-2]], dim=-1)
        prediction = self.fc(hidden)
        return prediction


# -- pytorch/examples time_sequence_prediction/train.py: two nn.LSTMCell in a loop -------------
class Sequence(nn.Module):
    def __init__(self, hidden=51):
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # if we should predict the future
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


# -- spro/char-rnn.pytorch model.py: a time-first nn.GRU fed one character per call ----------
class CharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, model="gru", n_layers=1):
        super().__init__()
        self.model = model.lower()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.n_layers = n_layers

        self.encoder = nn.Embedding(input_size, hidden_size)
        if self.model == "gru":
            self.rnn = nn.GRU(hidden_size, hidden_size, n_layers)
        elif self.model == "lstm":
            self.rnn = nn.LSTM(hidden_size, hidden_size, n_layers)
        self.decoder = nn.Linear(hidden_size, output_size)

    def forward(self, input, hidden):
        batch_size = input.size(0)
        encoded = self.encoder(input)
        output, hidden = self.rnn(encoded.view(1, batch_size, -1), hidden)
        output = self.decoder(output.view(batch_size, -1))
        return output, hidden

    def init_hidden(self, batch_size):
        if self.model == "lstm":
            return (torch.zeros(self.n_layers, batch_size, self.hidden_size),
                    torch.zeros(self.n_layers, batch_size, self.hidden_size))
        return torch.zeros(self.n_layers, batch_size, self.hidden_size)


# -- the same char-RNN with an nn.GRUCell, one step per call ----------------------------------
class CharGRUCell(nn.Module):
    def __init__(self, n_chars, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.encoder = nn.Embedding(n_chars, hidden_size)
        self.cell = nn.GRUCell(hidden_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, n_chars)

    def forward(self, char, hidden):
        hidden = self.cell(self.encoder(char), hidden)
        return self.decoder(hidden), hidden

    def init_hidden(self, batch_size):
        weight = next(self.parameters())
        return weight.new_zeros(batch_size, self.hidden_size)


# -- an Elman classifier written with nn.RNNCell ----------------------------------------------
class RNNCellClassifier(nn.Module):
    def __init__(self, input_size, hidden_size, n_classes):
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn_cell = nn.RNNCell(input_size, hidden_size)
        self.fc = nn.Linear(hidden_size, n_classes)

    def forward(self, x):  # x: (batch, time, features)
        h = x.new_zeros(x.size(0), self.hidden_size)
        for t in range(x.size(1)):
            h = self.rnn_cell(x[:, t, :], h)
        return self.fc(h)


# -- IndRNN (Li et al. 2018): h_t = relu(W x_t + b + u * h_(t-1)), u elementwise ---------------
class StepOut(NamedTuple):
    hidden: torch.Tensor
    pre: torch.Tensor


class IndRNNStep(nn.Module):
    """One IndRNN step; ``returns`` picks the output's form, to exercise hidden selectors:
    "tensor" (h), "tuple" ((h, pre)), "index1" ((pre, h)), "dict" ({"h", "pre"}),
    "named" (StepOut(hidden, pre))."""

    def __init__(self, input_size, hidden_size, returns="tensor"):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.returns = returns
        self.w = nn.Linear(input_size, hidden_size)
        self.u = nn.Parameter(torch.empty(hidden_size).uniform_(0.5, 1.0))

    def forward(self, x, h):
        pre = self.w(x) + self.u * h
        h = torch.relu(pre)
        pre = pre.detach()  # a by-product, not part of the recurrence
        return {
            "tensor": lambda: h,
            "tuple": lambda: (h, pre),
            "index1": lambda: (pre, h),
            "dict": lambda: {"h": h, "pre": pre},
            "named": lambda: StepOut(h, pre),
        }[self.returns]()


def hidden_of(out, returns):
    """The hidden state in an IndRNNStep output of form ``returns``."""
    return {"tensor": lambda: out, "tuple": lambda: out[0], "index1": lambda: out[1],
            "dict": lambda: out["h"], "named": lambda: out.hidden}[returns]()


class IndRNN(nn.Module):
    def __init__(self, input_size, hidden_size, returns="tensor"):
        super().__init__()
        self.step = IndRNNStep(input_size, hidden_size, returns)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x):  # (batch, time, features)
        h = x.new_zeros(x.size(0), self.step.hidden_size)
        outs = []
        for x_t in x.unbind(1):
            h = hidden_of(self.step(x_t, h), self.step.returns)
            outs.append(self.head(h))
        return torch.stack(outs, 1)
