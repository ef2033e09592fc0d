"""Completions: greedy and seeded generation against `bitnet run`, streaming, stop strings,
max_tokens, end of generation, logprobs, reuse of the evaluated prefix."""

import numpy as np
import pytest
from conftest import MODELS, STORIES, TINY

from bitnet import Llama

PROMPT = "Once upon a time"
N_CTX = 256


def stream_text(chunks) -> str:
    return "".join(chunk["choices"][0]["text"] for chunk in chunks)


@pytest.mark.parametrize("name", MODELS)
def test_greedy_matches_cli(name, model_path, run_cli):
    path = model_path(name)
    reference = run_cli(path, PROMPT, 40, "--greedy", "-c", str(N_CTX))
    with Llama(path, n_ctx=N_CTX, verbose=False) as llm:
        result = llm(PROMPT, max_tokens=40, temperature=0)
        assert result["choices"][0]["text"] == reference["text"]
        assert result["usage"]["prompt_tokens"] == len(reference["prompt_ids"])
        generated = reference["generated_ids"]
        if reference["stop_reason"] == "eog":  # the CLI lists the end-of-generation token too
            generated = generated[:-1]
            assert result["choices"][0]["finish_reason"] == "stop"
        else:
            assert result["choices"][0]["finish_reason"] == "length"
        assert result["usage"]["completion_tokens"] == len(generated)
        tokens = llm.generate(reference["prompt_ids"], temp=0)
        assert [next(tokens) for _ in generated] == generated


def test_seeded_sampling_matches_cli(model_path, run_cli):
    # llama-cpp-python's defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05) are the CLI's.
    path = model_path(STORIES)
    reference = run_cli(path, PROMPT, 40, "-s", "1234", "-c", str(N_CTX))
    with Llama(path, n_ctx=N_CTX, verbose=False) as llm:
        assert llm(PROMPT, max_tokens=40, seed=1234)["choices"][0]["text"] == reference["text"]


def test_completion_shape(stories):
    result = stories(PROMPT, max_tokens=8, temperature=0)
    assert result["id"].startswith("cmpl-")
    assert result["object"] == "text_completion"
    assert isinstance(result["created"], int)
    assert result["model"] == stories.model_path
    assert result["choices"] == [
        {"text": result["choices"][0]["text"], "index": 0, "logprobs": None, "finish_reason": "length"}
    ]
    assert result["usage"] == {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}
    assert stories(PROMPT, max_tokens=8, temperature=0, model="named")["model"] == "named"


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 7}], ids=["greedy", "seeded"])
def test_stream_concatenates_to_the_completion(tiny, sampling):
    whole = tiny(PROMPT, max_tokens=48, **sampling)
    chunks = list(tiny(PROMPT, max_tokens=48, stream=True, **sampling))
    assert stream_text(chunks) == whole["choices"][0]["text"]
    assert all(chunk["id"] == chunks[0]["id"] and chunk["object"] == "text_completion" for chunk in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    assert chunks[-1]["choices"][0]["text"] == ""


def test_seeds(stories):
    first = stories(PROMPT, max_tokens=32, seed=42)["choices"][0]["text"]
    assert stories(PROMPT, max_tokens=32, seed=42)["choices"][0]["text"] == first
    others = {stories(PROMPT, max_tokens=32, seed=s)["choices"][0]["text"] for s in (1, 2, 3)}
    assert others - {first}, "different seeds should sample differently"


def test_echo_and_token_prompt(stories):
    text = stories(PROMPT, max_tokens=6, temperature=0)["choices"][0]["text"]
    assert stories(PROMPT, max_tokens=6, temperature=0, echo=True)["choices"][0]["text"] == PROMPT + text
    tokens = stories.tokenize(PROMPT.encode())
    assert stories(tokens, max_tokens=6, temperature=0)["choices"][0]["text"] == text


def test_stop_strings(stories):
    full = stories(PROMPT, max_tokens=40, temperature=0)["choices"][0]["text"]
    stop = " little girl"  # spans tokens: " little", " g", "ir", "l"
    assert stop in full
    expected = full[: full.index(stop)]
    for stops in (stop, [stop], ["never appears", stop]):
        result = stories(PROMPT, max_tokens=40, temperature=0, stop=stops)
        assert result["choices"][0]["text"] == expected
        assert result["choices"][0]["finish_reason"] == "stop"
    chunks = list(stories(PROMPT, max_tokens=40, temperature=0, stop=[stop], stream=True))
    assert stream_text(chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stop_string_split_inside_a_token(stories):
    # A stop string that ends inside a token's piece, and one that starts inside one.
    full = stories(PROMPT, max_tokens=40, temperature=0)["choices"][0]["text"]
    for stop in ("e was a li", "le gi"):
        assert stop in full
        expected = full[: full.index(stop)]
        assert stories(PROMPT, max_tokens=40, temperature=0, stop=stop)["choices"][0]["text"] == expected
        assert stream_text(stories(PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True)) == expected


def test_stream_never_splits_a_character(stories):
    # stories260K's byte tokens <0x00>..<0xFF> are ids 3..258: forced one after the other, they
    # spell characters of several bytes, each complete only with its last byte.
    text = "€ä"
    forced = [3 + byte for byte in text.encode()]
    n_prompt = len(stories.tokenize(PROMPT.encode()))

    def spell(input_ids, scores):
        scores[:] = -np.inf
        scores[forced[len(input_ids) - n_prompt]] = 0
        return scores

    args = dict(max_tokens=len(forced), temperature=0, logits_processor=[spell])
    chunks = [c["choices"][0]["text"] for c in stories(PROMPT, stream=True, **args)]
    assert chunks == ["€", "ä", ""]
    assert stories(PROMPT, **args)["choices"][0]["text"] == text
    assert stories(PROMPT, stop="ä", **args)["choices"][0]["text"] == "€"


def test_max_tokens_none_runs_to_the_end_of_the_context(model_path):
    with Llama(model_path(TINY), n_ctx=32, verbose=False) as llm:
        for max_tokens in (None, 0, -1, 1000):
            result = llm(PROMPT, max_tokens=max_tokens, temperature=0)
            assert result["usage"]["total_tokens"] == 32
            assert result["choices"][0]["finish_reason"] == "length"


def test_end_of_generation(stories):
    eos = stories.token_eos()
    result = stories(PROMPT, max_tokens=8, temperature=0, logit_bias={eos: 100.0})
    assert result["choices"][0]["text"] == ""
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"]["completion_tokens"] == 0


def test_stopping_criteria_and_logits_processor(stories):
    greedy = stories(PROMPT, max_tokens=8, temperature=0)
    calls = []

    def stop_after_three(input_ids, logits):
        calls.append(len(input_ids))
        return len(calls) > 3

    result = stories(PROMPT, max_tokens=8, temperature=0, stopping_criteria=stop_after_three)
    assert result["usage"]["completion_tokens"] == 3
    assert result["choices"][0]["finish_reason"] == "stop"
    assert greedy["choices"][0]["text"].startswith(result["choices"][0]["text"])

    the = stories.tokenize(b"the", add_bos=False)[-1]

    def only_the(input_ids, scores):
        scores[:] = -np.inf
        scores[the] = 0
        return scores

    forced = stories(PROMPT, max_tokens=3, temperature=0, logits_processor=[only_the])
    assert forced["choices"][0]["text"] == stories.detokenize([the] * 3).decode()


def test_logprobs(model_path):
    with Llama(model_path(STORIES), n_ctx=N_CTX, logits_all=True, verbose=False) as llm:
        result = llm(PROMPT, max_tokens=6, temperature=0, logprobs=3)
        logprobs = result["choices"][0]["logprobs"]
        assert "".join(logprobs["tokens"]) == result["choices"][0]["text"]
        assert len(logprobs["token_logprobs"]) == 6
        assert logprobs["text_offset"][0] == len(PROMPT)
        for token, logprob, top in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]):
            assert logprob <= 0
            assert max(top.values()) == pytest.approx(logprob)  # greedy took the most likely token
            assert token in top and len(top) <= 4
        echoed = llm(PROMPT, max_tokens=6, temperature=0, logprobs=2, echo=True)["choices"][0]["logprobs"]
        assert echoed["token_logprobs"][0] is None and echoed["top_logprobs"][0] is None
        assert echoed["token_logprobs"][-6:] == pytest.approx(logprobs["token_logprobs"], abs=1e-3)
        assert len(echoed["tokens"]) == 4 + 6  # the prompt without BOS, then the completion
        streamed = list(llm(PROMPT, max_tokens=6, temperature=0, logprobs=3, stream=True))
        tokens = [t for c in streamed if c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["tokens"]]
        assert tokens == logprobs["tokens"]


def test_logprobs_need_logits_all(stories):
    with pytest.raises(ValueError, match="logits_all"):
        stories(PROMPT, max_tokens=2, logprobs=2)


@pytest.mark.parametrize("name", [TINY, STORIES])
def test_prefix_reuse_gives_what_a_fresh_context_gives(name, model_path, capfd):
    # n_batch 4: the prompts' first 4 tokens are a whole batch, kept from call to call.
    longer = PROMPT + " there was a dog"
    with Llama(model_path(name), n_ctx=N_CTX, n_batch=4, verbose=False) as fresh:
        expected = [fresh(p, max_tokens=20, temperature=0)["choices"][0]["text"] for p in (PROMPT, longer)]
        fresh.reset()
        assert fresh(longer, max_tokens=20, temperature=0)["choices"][0]["text"] == expected[1]
    capfd.readouterr()
    with Llama(model_path(name), n_ctx=N_CTX, n_batch=4, verbose=True) as llm:
        texts = [llm(p, max_tokens=20, temperature=0)["choices"][0]["text"] for p in (PROMPT, longer, PROMPT)]
        assert texts == [expected[0], expected[1], expected[0]]
    assert capfd.readouterr().err.count("Llama.generate: 4 prefix-match hit") == 2


def test_penalties_change_sampling(stories):
    plain = stories(PROMPT, max_tokens=40, temperature=0)["choices"][0]["text"]
    for penalty in ({"repeat_penalty": 1.5}, {"frequency_penalty": 1.0}, {"presence_penalty": 1.0}):
        penalized = stories(PROMPT, max_tokens=40, temperature=0, **penalty)["choices"][0]["text"]
        assert penalized != plain, penalty
