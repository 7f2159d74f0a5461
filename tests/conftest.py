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


@pytest.fixture(params=pydrop._ops.ISAS)
def any_isa(request):
    """Like `isa`, but every path appears, skipped with the reason where missing."""
    if request.param not in ISAS:
        pytest.skip(
            f"ISA {request.param!r} is not supported by this CPU/OS/build "
            f"(supported: {ISAS}; CPU features: {pydrop.info()['cpu_features']})"
        )
    with pydrop.use_isa(request.param):
        yield request.param
