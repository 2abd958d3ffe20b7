import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests run with the library's CPU settings; float64 where a test asks for it."""
    torch.set_flush_denormal(True)
    yield
