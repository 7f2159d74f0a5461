import pytest

import pydrop

# Every ISA path this machine (or the SIMDe-emulated build) can run.
ISAS = pydrop.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per ISA path, restoring the active one afterwards."""
    with pydrop.use_isa(request.param):
        yield request.param


@pytest.fixture
def restore_threads():
    n = pydrop.get_num_threads()
    yield
    pydrop.set_num_threads(n)
