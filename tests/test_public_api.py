"""The public API: every name each module exported before the house moved still imports
from its old path, and every name in each module's ``__all__`` exists."""

import importlib
import pkgutil

import pytest

import vanishing

#: module -> its ``__all__`` before modules moved into packages (cells/, descent/, sweep/,
#: report/); old paths such as ``vanishing.store`` must keep working.
BEFORE_THE_MOVE = {
    "vanishing": ["CELLS", "Cell", "ElmanCell", "GRUCell", "LSTMCell", "MODELS", "SequenceModel",
        "__version__", "build_model", "initialize", "make_cell", "make_probe", "spectral_radius",
        "twin", "unroll"],
    "vanishing.bptt": ["Gradients", "LagDecomposition", "elman_bptt", "elman_forward",
        "lag_terms"],
    "vanishing.cells": ["CELLS", "Cell", "ElmanCell", "GRUCell", "LSTMCell", "NONLINEARITIES",
        "make_cell", "twin"],
    "vanishing.cli.demo": ["demo"],
    "vanishing.cli.descend": ["descend"],
    "vanishing.cli.probe": ["probe"],
    "vanishing.cli.sweep": ["parse_lengths", "parse_lrs", "sweep"],
    "vanishing.cli.tasks": ["MAX_SHOW_LENGTH", "criterion", "default_length", "guess",
        "list_tasks", "parse_options", "show", "tasks_app"],
    "vanishing.cli.train": ["train_command"],
    "vanishing.demo": ["DEFAULT_GAP", "DEFAULT_MODELS", "DEFAULT_STEPS", "DemoReport",
        "LEARNING_RATE", "LSTM_FORGET_BIAS", "ModelReport", "demo_config", "gradient_profile",
        "run_demo"],
    "vanishing.descent": ["Status", "StepRegime", "StepVerdict", "Trace", "classify_step_size",
        "curvature_at", "descend", "hessian_at", "step_size_verdict"],
    "vanishing.diagnose": ["Diagnosis", "REMEDIES", "Verdict", "WeightCondition", "classify",
        "diagnose", "lag_decomposition", "remedies", "saturation", "weight_conditions"],
    "vanishing.expr": ["Expression", "ExpressionError", "FUNCTIONS", "MAX_DEPTH", "MAX_EXPONENT",
        "MAX_LENGTH", "MAX_NESTING", "parse_expression"],
    "vanishing.init": ["SCHEMES", "initialize", "recurrent_layers", "spectral_radius"],
    "vanishing.jacobian": ["JacobianTrace", "SPECTRAL", "cell_jacobian_products",
        "jacobian_products"],
    "vanishing.models": ["CORES", "MODELS", "READOUTS", "SequenceModel", "build_model"],
    "vanishing.monitor": ["Alarm", "GradientAlarm", "GradientMonitor"],
    "vanishing.plots": ["plot_gradient_decay", "plot_learning_curves", "save"],
    "vanishing.plots_descent": ["GROWTH_LIMIT", "MAX_ARROWS", "locate_minimum", "plot_descent"],
    "vanishing.plots_probe": ["plot_diagnosis"],
    "vanishing.plots_sweep": ["MARKERS", "plot_horizon", "plot_success", "sweep_figures"],
    "vanishing.probe": ["LayerGradients", "LayerRecord", "Loss", "Trace", "default_loss",
        "hidden_gradients", "input_gradients", "layer_gradients", "row_norms", "unrolled"],
    "vanishing.store": ["APPLICATION_ID", "FINISHED", "SCHEMA_VERSION", "STATUSES", "Store",
        "StoreError", "canonical_json", "config_key", "open_store"],
    "vanishing.sweep": ["Cell", "HORIZON_THRESHOLD", "PROBE_BATCH", "PROBE_SEED",
        "RAY_CONNECT_TIMEOUT", "SweepSummary", "best_cells", "check_ray_address",
        "default_workers", "describe_error", "gradient_horizon", "grid", "lr_text", "run_sweep",
        "run_trial", "summarize", "table_rows", "varying_fields"],
    "vanishing.sweep_summary": ["Cell", "best_cells", "lr_text", "summarize", "table_rows",
        "varying_fields"],
    "vanishing.tasks": ["ClassificationTask", "TASKS", "Task", "get_task", "register",
        "task_names"],
    "vanishing.tasks.adding": ["AddingH97Task", "AddingTask", "RegressionTask"],
    "vanishing.tasks.base": ["ClassificationTask", "HELDOUT_PARTS", "TASKS", "Task", "get_task",
        "register", "task_names"],
    "vanishing.tasks.copying": ["BLANK", "COPY", "CopyingTask", "MARKER", "SYMBOLS"],
    "vanishing.tasks.digits": ["DigitsTask", "PERMUTATION_SEED", "PIXELS", "PermutedDigitsTask",
        "TRAIN_SIZE", "VALIDATION_SIZE", "load", "permutation"],
    "vanishing.tasks.language": ["FILLER", "LanguageTask", "PAIRS"],
    "vanishing.tasks.latch": ["GuessResult", "LatchTask", "NOISE_VARIANCE", "random_guessing"],
    "vanishing.tasks.temporal_order": ["ALPHABET", "CLASSES", "TemporalOrderTask"],
    "vanishing.train": ["OPTIMIZERS", "TrainConfig", "TrainResult", "build", "evaluate",
        "load_checkpoint", "save_checkpoint", "train"],
    "vanishing.unroll": ["make_probe", "unroll"],
}


@pytest.mark.parametrize("module", sorted(BEFORE_THE_MOVE))
def test_every_old_name_imports_from_its_old_path(module):
    mod = importlib.import_module(module)
    missing = [name for name in BEFORE_THE_MOVE[module] if not hasattr(mod, name)]
    assert missing == [], f"{module} lost {missing}"


def _all_modules():
    found = ["vanishing"]
    for info in pkgutil.walk_packages(vanishing.__path__, "vanishing."):
        found.append(info.name)
    return found


@pytest.mark.parametrize("module", _all_modules())
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", [])
    assert [n for n in names if not hasattr(mod, n)] == []
    assert len(set(names)) == len(names), f"{module}.__all__ lists a name twice"


def test_an_old_path_is_the_very_module_of_the_new_one():
    import vanishing.store as old

    import vanishing.sweep.store as new

    assert old is new and new.__spec__.name == "vanishing.sweep.store"
    from vanishing.expr import parse_expression

    from vanishing.descent import expr

    assert parse_expression is expr.parse_expression


def test_renamed_classes_keep_their_old_names():
    from vanishing.descent import DescentPath, Trace
    from vanishing.sweep import Cell, SweepPoint, best_cells, best_points

    assert Trace is DescentPath and Cell is SweepPoint and best_cells is best_points
