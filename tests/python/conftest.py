"""Fixtures of the bitnet package's tests: the reference models (the shared directory, as the
C++ tests find it), the `bitnet` CLI the generations are compared with, loaded Llamas.

ctest runs these with PYTHONPATH=build/python, BITNET_CACHE_DIR (compiled plans, shared with
the C++ tests) and BITNET_CLI set (python/CMakeLists.txt)."""

import json
import os
import pathlib
import subprocess

import pytest

from bitnet import Llama

REPO = pathlib.Path(__file__).resolve().parents[2]

# Every reference model of the shared directory the engine runs (models/PROVENANCE.md).
MODELS = [
    "bitnet-i2s/bitnet-tiny-mha.i2_s.gguf",
    "bitnet-i2s/b158-tiny-gqa.i2_s.gguf",
    "bitnet-i2s/b158-small-gqa.i2_s.gguf",
    "stories260K.gguf",
]
STORIES = "stories260K.gguf"  # a real (tiny) story model: readable English, ends stories with EOS
TINY = "bitnet-i2s/bitnet-tiny-mha.i2_s.gguf"


def _missing(what: str) -> None:
    """Skips, with the reason, or fails under CI, where everything must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} but CI is set: it must be there")
    pytest.skip(what)


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("BITNET_SHARED_DIR") or REPO.parent / "shared")
    if not (path / "models").is_dir():
        _missing(f"the shared reference directory {path} is absent (set BITNET_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def model_path(shared_dir):
    """model_path(name) -> the path of a reference model."""
    return lambda name: str(shared_dir / "models" / name)


@pytest.fixture(scope="session")
def cli() -> str:
    path = os.environ.get("BITNET_CLI") or str(REPO / "build" / "bin" / "bitnet")
    if not os.access(path, os.X_OK):
        _missing(f"the bitnet CLI {path} is not built (set BITNET_CLI)")
    return path


@pytest.fixture(scope="session")
def run_cli(cli, tmp_path_factory):
    """run_cli(model, prompt, n, *flags) -> `bitnet run`'s --json-out document."""

    def run(model: str, prompt: str, n: int, *flags: str) -> dict:
        out = tmp_path_factory.mktemp("cli") / "run.json"
        subprocess.run([cli, "run", "-m", model, "-p", prompt, "-n", str(n), "--json-out", str(out),
                        "--no-display-prompt", *flags], check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text(encoding="utf-8"))

    return run


# Per test: a cached plan loads in milliseconds.
@pytest.fixture
def stories(model_path):
    with Llama(model_path(STORIES), n_ctx=256, verbose=False) as llm:
        yield llm


@pytest.fixture
def tiny(model_path):
    with Llama(model_path(TINY), n_ctx=256, verbose=False) as llm:
        yield llm
