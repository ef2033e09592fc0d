"""The rest of the Llama API: tokens, model facts, eval and scores, chat completions, errors,
llama-cpp-python's arguments that do not apply, the lifetime of a Llama."""

import logging

import numpy as np
import pytest
from conftest import STORIES, TINY

from bitnet import Llama

PROMPT = "Once upon a time"


def test_tokenize_round_trip(stories):
    text = "Once upon a time, there was a cat."
    with_bos = stories.tokenize(text.encode())
    without = stories.tokenize(text.encode(), add_bos=False)
    assert with_bos == [stories.token_bos()] + without
    assert stories.detokenize(with_bos) == text.encode()
    assert stories.detokenize(without) == b" " + text.encode()  # SentencePiece's space, kept without BOS
    assert stories.detokenize(without, prev_tokens=with_bos[:1]) == b" " + text.encode()


def test_special_tokens(stories):
    bos = stories.token_bos()
    assert stories.tokenize(b"<s>", add_bos=False, special=True) == [bos]
    assert bos not in stories.tokenize(b"<s>", add_bos=False, special=False)
    assert stories.detokenize([bos], special=True) == b"<s>"
    assert stories.detokenize([bos]) == b""
    with pytest.raises(ValueError, match="outside the vocabulary"):
        stories.detokenize([stories.n_vocab()])


def test_model_facts(stories):
    assert (stories.n_ctx(), stories.n_vocab(), stories.n_embd()) == (256, 512, 64)
    assert (stories.token_bos(), stories.token_eos()) == (1, 2)
    assert stories.metadata["general.architecture"] == "llama"
    assert stories.metadata["llama.embedding_length"] == "64"
    assert stories.metadata["tokenizer.ggml.tokens"].endswith("(512 string items)]")


def test_n_ctx_zero_is_the_training_context(model_path):
    with Llama(model_path(STORIES), n_ctx=0, verbose=False) as llm:
        assert llm.n_ctx() == int(llm.metadata["llama.context_length"])


def test_n_gpu_layers_takes_the_gpu_where_the_cuda_backend_runs_the_model(model_path):
    # stories260K is a llama model, which the CUDA backend does not run: the CPU, the same text.
    with Llama(model_path(STORIES), n_ctx=64, verbose=False, n_gpu_layers=-1) as gpu:
        assert gpu._ctx.backend() in ("jit", "plan")
        text = gpu(PROMPT, max_tokens=8, temperature=0)["choices"][0]["text"]
    with Llama(model_path(STORIES), n_ctx=64, verbose=False) as cpu:
        assert cpu(PROMPT, max_tokens=8, temperature=0)["choices"][0]["text"] == text
    # A BitNet model runs on the GPU when there is one, else on the CPU.
    with Llama(model_path(TINY), n_ctx=64, verbose=False, n_gpu_layers=99) as tiny:
        assert tiny._ctx.backend() in ("cuda", "jit", "plan")


def test_eval_and_scores(model_path):
    with Llama(model_path(TINY), n_ctx=64, verbose=False) as llm:
        first = llm(PROMPT, max_tokens=1, temperature=0)
        tokens = llm.tokenize(PROMPT.encode())
        llm.reset()
        llm.eval(tokens)
        assert llm.n_tokens == len(tokens)
        assert llm.input_ids[: llm.n_tokens].tolist() == tokens
        assert llm.scores.dtype == np.float32 and llm.scores.shape == (64, llm.n_vocab())
        last = llm.scores[llm.n_tokens - 1]
        assert llm.detokenize([int(np.argmax(last))]).decode() == first["choices"][0]["text"]
        assert llm.sample(temp=0) == int(np.argmax(last))
        assert len(llm.eval_logits) == 1 and len(llm.eval_tokens) == len(tokens)
        llm.eval(llm.tokenize(b" more", add_bos=False))  # appends
        assert llm.n_tokens > len(tokens)
    with Llama(model_path(TINY), n_ctx=64, logits_all=True, verbose=False) as every:
        every.eval(tokens)
        assert np.count_nonzero(every.scores[: len(tokens)].any(axis=1)) == len(tokens)
        assert int(np.argmax(every.scores[len(tokens) - 1])) == int(np.argmax(last))
        assert len(every.eval_logits) == len(tokens)


def test_chat_completion(stories):
    messages = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "A story please"}]
    reply = stories.create_chat_completion(messages, max_tokens=24, temperature=0)
    assert reply["id"].startswith("chatcmpl-")
    assert reply["object"] == "chat.completion"
    choice = reply["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    assert reply["usage"]["completion_tokens"] <= 24
    chunks = list(stories.create_chat_completion(messages, max_tokens=24, temperature=0, stream=True))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == choice["finish_reason"]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == choice["message"]["content"]


def test_chat_formats(model_path):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    with Llama(model_path(STORIES), n_ctx=128, chat_format="llama-2", verbose=False) as llm:
        assert llm.chat_format == "llama2"
        assert llm.create_chat_completion(messages, max_tokens=2)["object"] == "chat.completion"
    with pytest.raises(ValueError, match="unknown chat_format"):
        Llama(model_path(STORIES), chat_format="no-such-format", verbose=False)


def test_errors(model_path, stories, tmp_path):
    with pytest.raises(ValueError, match="Model path does not exist"):
        Llama(str(tmp_path / "missing.gguf"), verbose=False)
    not_a_model = tmp_path / "empty.gguf"
    not_a_model.write_bytes(b"not a gguf")
    with pytest.raises(ValueError):
        Llama(str(not_a_model), verbose=False)
    with pytest.raises(ValueError, match="n_ctx"):
        Llama(model_path(STORIES), n_ctx=-1, verbose=False)
    with pytest.raises(ValueError, match=r"Requested tokens \(\d+\) exceed context window of 256"):
        stories("word " * 300)
    with pytest.raises(ValueError, match="typical_p"):
        stories(PROMPT, typical_p=0.5)
    with pytest.raises(ValueError, match="mirostat"):
        stories(PROMPT, mirostat_mode=2)
    with pytest.raises(ValueError, match="suffix"):
        stories(PROMPT, suffix="The end.")
    with pytest.raises(ValueError, match="tool"):
        stories.create_chat_completion([{"role": "user", "content": "x"}], tools=[{"type": "function"}])
    with pytest.raises(ValueError, match="embedding"):
        Llama(model_path(STORIES), embedding=True, verbose=False)
    with pytest.raises(ValueError, match="repeat_penalty"):
        stories(PROMPT, repeat_penalty=0)


def test_ignored_arguments(model_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="bitnet"):
        llm = Llama(model_path(STORIES), n_ctx=64, n_gpu_layers=-1, main_gpu=0, use_mmap=False, use_mlock=True,
                    flash_attn=True, n_ubatch=128, n_threads_batch=4, offload_kqv=False, verbose=False)
    assert "main_gpu" in caplog.text and "flash_attn" in caplog.text
    # n_gpu_layers is not ignored: it asks for the GPU, which this llama model cannot have.
    assert "n_gpu_layers=-1: running on jit" in caplog.text or "n_gpu_layers=-1: running on plan" in caplog.text
    assert llm(PROMPT, max_tokens=2, temperature=0, tfs_z=0.5)["usage"]["completion_tokens"] == 2
    llm.close()


def test_verbose(model_path, capfd):
    with Llama(model_path(STORIES), n_ctx=64, verbose=False) as quiet:
        quiet(PROMPT, max_tokens=4)
    assert capfd.readouterr().err == ""
    with Llama(model_path(STORIES), n_ctx=64, verbose=True):
        pass
    assert "n_ctx 64" in capfd.readouterr().err


def test_context_manager_and_close(model_path):
    with Llama(model_path(STORIES), n_ctx=64, verbose=False) as llm:
        assert llm(PROMPT, max_tokens=2)["usage"]["completion_tokens"] == 2
    with pytest.raises(RuntimeError, match="closed"):
        llm(PROMPT, max_tokens=2)
    llm.close()  # twice is fine
