"""A sweep's report text from store rows written out by hand."""

from vanishing.report.sweep_text import budget, criterion, failure_lines, sweep_text, trial_line
from vanishing.sweep.summary import SweepPoint

SETTING = {"task": "adding", "steps": 100, "hidden_size": 8, "batch_size": 16,
           "optimizer": "adam", "clip": 1.0, "eval_every": 10, "eval_size": 64}


def row(model, length, seed, solved, steps_to_solve=None, lr=1e-2, status="done", loss=0.1,
        **setting):
    config = {**SETTING, "model": model, "length": length, "lr": lr, "seed": seed, **setting}
    return {"config": config, "task": config["task"], "model": model, "length": length,
            "lr": lr, "status": status, "solved": solved, "steps_to_solve": steps_to_solve,
            "horizon": length - 1, "probe_length": length, "final": {"loss": loss},
            "message": "boom" if status == "failed" else None}


def test_tables_per_task_from_the_rows():
    records = [row("lstm", 5, 0, True, 30, loss=0.004), row("lstm", 5, 1, True, 50, loss=0.008),
               row("rnn_tanh", 5, 0, False, loss=0.15), row("rnn_tanh", 5, 1, True, 90, loss=0.01)]
    text = sweep_text(records)
    success, horizon, loss = text.tables
    assert success.title == "adding: seeds solved (mse < 0.01)"
    assert success.header == ["model", "T = 5"]
    assert success.rows == [["rnn_tanh", "1/2 (90)"], ["lstm", "2/2 (40)"]]
    assert success.caption == ("solved / seeds (median steps to solve). Budget: up to 100 "
                               "steps, hidden 8, batch 16, adam, clip 1, evaluated every 10 "
                               "steps on 64 held-out sequences.")
    assert horizon.title == "adding: gradient horizon of the trained models"
    assert horizon.rows == [["rnn_tanh", "4 of 4"], ["lstm", "4 of 4"]]
    chance = 1 / 6  # adding: Var(u1 + u2) = 2/12, closed form
    assert loss.title == "adding: final held-out loss, as a fraction of chance"
    assert loss.rows == [["rnn_tanh", f"{0.08 / chance:.2f}"], ["lstm", f"{0.006 / chance:.2f}"]]
    assert loss.rows[0][1] == "0.48"
    assert text.notes == [] and text.failures == []
    assert [(p.model, p.solved) for p in text.points] == [("rnn_tanh", 1), ("lstm", 2)]


def test_notes_for_a_mixed_store_and_lines_for_failed_trials():
    records = [row("lstm", 5, 0, True, 30), row("lstm", 5, 1, True, 30, steps=200)]
    records += [row("gru", 5, s, None, status="failed") for s in range(7)]
    text = sweep_text(records)
    assert text.notes == ["note: this store mixes trials that differ in steps; each table "
                          "cell shows the best of them"]
    assert text.failures[0] == "failed: gru T=5 lr 1e-2 seed 0: boom"
    assert len(text.failures) == 6 and text.failures[-1] == "... and 2 more failed trials"
    assert failure_lines(records, limit=7)[-1] == "failed: gru T=5 lr 1e-2 seed 6: boom"


def test_budget_and_criterion_of_a_store_from_another_version():
    point = SweepPoint("digits", "lstm", 64, 1e-3, {"task": "digits", "clip": None})
    assert budget([point]) == ("up to ? steps, hidden ?, batch ?, ?, no clipping, evaluated "
                               "every ? steps on the test split")
    assert criterion("no-such-task") == "" and criterion("adding") == " (mse < 0.01)"


def test_one_line_per_trial():
    done = {**row("lstm", 50, 1, True, 400, lr=3e-3), "steps": 400, "wall_time": 2.14}
    done["final"] = {"loss": 0.00213}
    assert trial_line(3, 16, done) == ("[3/16] lstm T=50 lr 3e-3 seed 1: solved at step 400, "
                                       "loss 0.00213, horizon 49 (2.1 s)")
    unsolved = {**done, "solved": False, "horizon": None}
    assert trial_line(3, 16, unsolved).endswith(": unsolved after 400 steps, loss 0.00213 "
                                                "(2.1 s)")
    assert ": diverged, loss" in trial_line(1, 2, {**done, "status": "diverged"})
    failed = row("gru", 5, 0, None, status="failed")
    assert trial_line(1, 2, failed) == "[1/2] gru T=5 lr 1e-2 seed 0: failed: boom"


def test_loss_table_uses_the_trials_task_options_and_names_diverged_trials():
    """Chance loss at the trials' own options (language with 2 pairs: ln 2, not ln 8);
    a diverged trial is named, not hidden in the median."""
    import math

    two = {"task": "language", "task_options": {"pairs": 2}}
    records = [row("lstm", 5, s, False, loss=math.log(2), **two) for s in range(2)]
    records += [row("gru", 5, 0, False, loss=0.5 * math.log(2), **two),
                row("gru", 5, 1, False, loss=float("nan"), status="diverged", **two)]
    for r in records:
        r["task"] = "language"
    loss = sweep_text(records).tables[2]
    assert loss.title == "language: final held-out loss, as a fraction of chance"
    assert loss.rows == [["lstm", "1.00"], ["gru", "0.50 (1 diverged)"]]
