"""BitNet-cxx for Python: run BitNet and llama GGUF models on the CPU through the API of
llama-cpp-python 0.3 (``from bitnet import Llama``)."""

from .llama import (
    LLAMA_DEFAULT_SEED,
    Llama,
    LogitsProcessorList,
    StoppingCriteriaList,
)

__all__ = ["LLAMA_DEFAULT_SEED", "Llama", "LogitsProcessorList", "StoppingCriteriaList"]
