import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _cpu_settings():
    """One thread (small models gain nothing from two, and two collapse on a busy CPU);
    denormals flushed, as the library's entry points do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)
