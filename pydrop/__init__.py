"""pydrop: dropout training on the CPU, fast.

Hand-written C kernels (a Philox4x32-10 counter-based RNG for dropout masks,
SGEMM, ReLU) with scalar, AVX2 and AVX-512 paths chosen at run time, behind
NumPy-in/NumPy-out functions, layers, the tutorial's models and a trainer.
"""

from . import nn
from ._ops import (
    dropout,
    dropout_backward,
    dropout_layer,
    get_isa,
    get_num_threads,
    get_rng_state,
    get_sparse_gemm,
    info,
    linear,
    linear_backward,
    matmul,
    relu,
    relu_backward,
    seed,
    set_isa,
    set_num_threads,
    set_rng_state,
    set_sparse_gemm,
    supported_isas,
    use_isa,
    use_sparse_gemm,
)
from ._version import __version__
from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .data import FashionMNIST
from .losses import SoftmaxCrossEntropy, accuracy
from .models import MLP, DropoutMLP, DropoutMLPScratch
from .optim import SGD
from .train import History, Trainer

__all__ = [
    "__version__",
    # array ops
    "dropout",
    "dropout_backward",
    "dropout_layer",
    "linear",
    "linear_backward",
    "matmul",
    "relu",
    "relu_backward",
    # runtime
    "get_isa",
    "get_num_threads",
    "get_rng_state",
    "get_sparse_gemm",
    "info",
    "seed",
    "set_isa",
    "set_num_threads",
    "set_rng_state",
    "set_sparse_gemm",
    "supported_isas",
    "use_isa",
    "use_sparse_gemm",
    # training stack
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
