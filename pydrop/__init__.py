"""pydrop: dropout training on the CPU, fast.

Hand-written C kernels (a Philox4x32-10 counter-based RNG for dropout masks,
SGEMM, ReLU) with scalar, AVX2 and AVX-512 paths chosen at run time, behind
NumPy-in/NumPy-out functions, layers, the tutorial's models and a trainer.
"""

from ._ops import (
    dropout,
    dropout_backward,
    dropout_layer,
    get_isa,
    get_num_threads,
    info,
    matmul,
    relu,
    relu_backward,
    seed,
    set_isa,
    set_num_threads,
    supported_isas,
    use_isa,
)
from ._version import __version__

__all__ = [
    "__version__",
    "dropout",
    "dropout_backward",
    "dropout_layer",
    "get_isa",
    "get_num_threads",
    "info",
    "matmul",
    "relu",
    "relu_backward",
    "seed",
    "set_isa",
    "set_num_threads",
    "supported_isas",
    "use_isa",
]

# training stack
from . import nn  # noqa: E402
from .checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: E402
from .data import FashionMNIST  # noqa: E402
from .losses import SoftmaxCrossEntropy, accuracy  # noqa: E402
from .models import MLP, DropoutMLP, DropoutMLPScratch  # noqa: E402
from .optim import SGD  # noqa: E402
from .train import History, Trainer  # noqa: E402

__all__ += [
    "nn",
    "FashionMNIST",
    "MLP",
    "DropoutMLP",
    "DropoutMLPScratch",
    "SGD",
    "SoftmaxCrossEntropy",
    "accuracy",
    "Trainer",
    "History",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
]
