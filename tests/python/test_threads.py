"""Llama objects on threads: each gives what it gives alone, and the GIL is released while the
engine decodes (so they run in parallel)."""

import threading
import time

import pytest
from conftest import STORIES, TINY

from bitnet import Llama

PROMPTS = ["Once upon a time", "The quick brown fox"]


def test_two_threads_give_what_each_gives_alone(model_path):
    # Two different models alive at once (each with its own plan's kernels), and two Llamas of one.
    paths = [model_path(TINY), model_path(STORIES), model_path(TINY)]
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    expected = []
    for path, prompt in zip(paths, prompts):
        with Llama(path, n_ctx=256, n_threads=1, verbose=False) as alone:
            expected.append(alone(prompt, max_tokens=64, temperature=0)["choices"][0]["text"])
    llms = [Llama(path, n_ctx=256, n_threads=1, verbose=False) for path in paths]
    results = [None] * len(llms)

    def complete(i: int) -> None:
        results[i] = [llms[i](prompts[i], max_tokens=64, temperature=0)["choices"][0]["text"] for _ in range(3)]

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(llms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for llm in llms:
        llm.close()
    assert results == [[text] * 3 for text in expected]


def test_decode_releases_the_gil(model_path):
    # One eval of n_batch tokens is one decode call (tens of milliseconds on one thread). Were
    # the GIL held through it, this thread could run no Python code for that long: the longest
    # pause between its ticks would be as long as the decode.
    with Llama(model_path("bitnet-i2s/b158-small-gqa.i2_s.gguf"), n_ctx=512, n_threads=1, verbose=False) as llm:
        tokens = [llm.token_bos()] + list(range(100, 100 + llm.n_batch - 1))
        start = time.perf_counter()
        llm.eval(tokens)
        decode_s = time.perf_counter() - start
        for _ in range(5):  # a busy machine may pause this thread during some decode
            llm.reset()
            go = threading.Event()  # the worker decodes once this thread is ticking

            def decode_when_told() -> None:
                go.wait()
                llm.eval(tokens)

            worker = threading.Thread(target=decode_when_told)
            worker.start()
            ticks = [time.perf_counter()]
            go.set()
            while worker.is_alive():
                ticks.append(time.perf_counter())
            worker.join()
            longest_pause = max(b - a for a, b in zip(ticks, ticks[1:]))
            if longest_pause < decode_s / 2:
                return
        pytest.fail(f"Python code paused for {1000 * longest_pause:.0f} ms during a decode of {1000 * decode_s:.0f} ms")
