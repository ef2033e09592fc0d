"""llama-cpp-python 0.3's ``Llama`` on BitNet-cxx.

The same constructor, completion and chat-completion calls, return shapes and stream chunks
as llama-cpp-python, running on this repository's engine through the ``_bitnet`` extension
module. Greedy generation (temperature 0) gives what ``bitnet run --greedy`` prints.
Sampling options the engine has no step for (typical_p, mirostat, grammars) raise
ValueError unless left at their defaults; options about GPUs and memory placement are
accepted and ignored.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _bitnet

logger = logging.getLogger("bitnet")

LLAMA_DEFAULT_SEED = 0xFFFFFFFF

# Constructor arguments of llama-cpp-python that would change results if they were honoured:
# refused unless they keep llama-cpp-python's default. Any other unknown argument (GPU layers,
# mmap/mlock, ubatch, flash attention, KV cache types, ...) is accepted and ignored.
_UNSUPPORTED_LLAMA_ARGS: Dict[str, Any] = {
    "vocab_only": False,
    "embedding": False,
    "lora_base": None,
    "lora_path": None,
    "kv_overrides": None,
    "chat_handler": None,
    "draft_model": None,
    "tokenizer": None,
    "rope_freq_base": 0.0,
    "rope_freq_scale": 0.0,
}

# llama-cpp-python's chat format names for the engine's built-in templates.
_CHAT_FORMAT_ALIASES = {
    "llama-2": "llama2",
    "llama-3": "llama3",
    "mistral-instruct": "mistral",
    "chat_template.default": "",  # the model's own template
}


class LogitsProcessorList(list):
    """Callables ``(input_ids, scores) -> scores`` applied in order before sampling."""

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


class StoppingCriteriaList(list):
    """Callables ``(input_ids, logits) -> bool``; generation stops when one says True."""

    def __call__(self, input_ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]) -> bool:
        return any(criterion(input_ids, logits) for criterion in self)


@dataclass
class _Completion:
    """One create_completion request, validated, and what its generation produced."""

    prompt_tokens: List[int]
    prompt_text: str
    max_tokens: int
    stop: List[bytes]
    logprobs: Optional[int]
    echo: bool
    model_name: str
    generate_args: Dict[str, Any] = field(default_factory=dict)  # for Llama.generate
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4()}")
    created: int = field(default_factory=lambda: int(time.time()))
    completion_tokens: List[int] = field(default_factory=list)
    finish_reason: str = "length"

    def chunk(self, text: str, logprobs: Optional[dict], finish_reason: Optional[str]) -> dict:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model_name,
            "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}],
        }


class Llama:
    """A model and its context, with llama-cpp-python's high-level API."""

    def __init__(
        self,
        model_path: str,
        *,
        seed: int = LLAMA_DEFAULT_SEED,
        n_ctx: int = 512,
        n_batch: int = 512,
        n_threads: Optional[int] = None,
        logits_all: bool = False,
        last_n_tokens_size: int = 64,
        chat_format: Optional[str] = None,
        verbose: bool = True,
        n_gpu_layers: int = 0,
        **kwargs: Any,
    ):
        """Loads ``model_path`` (a GGUF file; compiled plans are cached, see README) with a
        context of ``n_ctx`` tokens (0: the model's training context).

        ``n_gpu_layers``: 0 runs on the CPU; any other value (llama-cpp-python's -1: all layers)
        runs the whole model on an NVIDIA GPU where the CUDA backend can (a BitNet I2_S model,
        a driver and a device), else on the CPU (with ``verbose``, a line says why). Layers are never
        split between the two.

        Raises:
            ValueError: the model path does not exist or does not load, or a bad argument.
        """
        self.verbose = verbose
        _bitnet.set_verbose(verbose)
        _check_llama_kwargs(kwargs)
        if not os.path.exists(model_path):
            raise ValueError(f"Model path does not exist: {model_path}")
        if n_ctx < 0:
            raise ValueError(f"n_ctx must not be negative (0: the model's training context), got {n_ctx}")
        if n_batch < 1:
            raise ValueError(f"n_batch must be positive, got {n_batch}")
        if n_threads is not None and n_threads < 0:
            raise ValueError(f"n_threads must not be negative, got {n_threads}")
        self.model_path = model_path
        self._model = _bitnet.Model.load(model_path, verbose, "jit" if n_gpu_layers == 0 else "auto")
        if n_ctx == 0:
            n_ctx = self._model.n_ctx_train()
        self._ctx = _bitnet.Context(self._model, n_ctx, n_threads or 0)
        if n_gpu_layers != 0:
            logger.debug("Llama: n_gpu_layers=%d: running on %s", n_gpu_layers, self._ctx.backend())
        self.n_batch = min(n_ctx, n_batch)
        self.n_threads = self._ctx.threads()
        self.last_n_tokens_size = last_n_tokens_size
        self._logits_all = logits_all
        self._seed = seed
        self._n_ctx = self._ctx.n_ctx()
        self._n_vocab = self._model.n_vocab()

        self.n_tokens = 0
        self.input_ids: npt.NDArray[np.intc] = np.zeros((self._n_ctx,), dtype=np.intc)
        # np.zeros: the memory of rows never written is never touched.
        self.scores: npt.NDArray[np.single] = np.zeros((self._n_ctx, self._n_vocab), dtype=np.single)
        self._last_logits: Optional[npt.NDArray[np.single]] = None
        self._batched = 0  # leading positions decoded in whole chunks of _batch_step() (_reuse_prefix)

        self.metadata: Dict[str, str] = self._model.metadata()
        self.chat_format = self._resolve_chat_format(chat_format)
        if verbose:
            print(
                f"bitnet: {self._model.description()} from {model_path}: backend {self._ctx.backend()}, "
                f"n_ctx {self._n_ctx}, n_batch {self.n_batch}, threads {self.n_threads}, "
                f"chat format {self.chat_format}",
                file=sys.stderr,
            )

    # ---- model facts ---------------------------------------------------------------------

    def n_ctx(self) -> int:
        """The context window in tokens."""
        return self._n_ctx

    def n_vocab(self) -> int:
        return self._n_vocab

    def n_embd(self) -> int:
        return self._model.n_embd()

    def token_bos(self) -> int:
        """The beginning-of-sequence token; -1 when the model has none."""
        return self._model.token_bos()

    def token_eos(self) -> int:
        """The end-of-sequence token; -1 when the model has none."""
        return self._model.token_eos()

    # ---- tokens --------------------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """UTF-8 ``text`` to tokens; ``add_bos``: BOS (and EOS) where the model adds them;
        ``special``: control-token texts such as ``<|eot_id|>`` become those tokens."""
        return self._model.tokenize(bytes(text), add_bos, special)

    def detokenize(
        self, tokens: Sequence[int], prev_tokens: Optional[Sequence[int]] = None, special: bool = False
    ) -> bytes:
        """Tokens to UTF-8 bytes, as llama-cpp-python: their pieces concatenated, less the
        leading space after a BOS. ``prev_tokens`` is accepted and unused, as there."""
        tokens = [int(t) for t in tokens]
        text = self._model.pieces(tokens, special)
        if tokens and tokens[0] == self.token_bos() and text.startswith(b" "):
            return text[1:]
        return text

    # ---- evaluation state ----------------------------------------------------------------

    @property
    def _input_ids(self) -> npt.NDArray[np.intc]:
        return self.input_ids[: self.n_tokens]

    @property
    def _scores(self) -> npt.NDArray[np.single]:
        return self.scores[: self.n_tokens, :]

    @property
    def eval_tokens(self) -> Deque[int]:
        return deque(self.input_ids[: self.n_tokens].tolist(), maxlen=self._n_ctx)

    @property
    def eval_logits(self) -> Deque[List[float]]:
        return deque(self.scores[: self.n_tokens, :].tolist(), maxlen=self._n_ctx if self._logits_all else 1)

    def reset(self) -> None:
        """Forgets the evaluated tokens (the next eval starts from position 0)."""
        self.n_tokens = 0

    def set_seed(self, seed: int) -> None:
        self._seed = seed

    def eval(self, tokens: Sequence[int]) -> None:
        """Appends ``tokens`` to the context (after the first ``n_tokens``). Their logits go to
        ``scores``: every token's row with logits_all, else the last token's row."""
        last = self._eval([int(t) for t in tokens])
        if not self._logits_all:
            self.scores[self.n_tokens - 1, :] = last

    def _batch_step(self) -> int:
        return min(self.n_batch, self._ctx.n_batch())

    def _eval(self, tokens: List[int]) -> npt.NDArray[np.single]:
        """Decodes ``tokens`` at positions n_tokens.. in batches; returns the last one's logits."""
        if not tokens:
            raise ValueError("no tokens to evaluate")
        step = self._batch_step()
        self._ctx.seq_rm(self.n_tokens)  # what lies beyond n_tokens (after reset()) goes
        self._batched = min(self._batched, self.n_tokens - self.n_tokens % step)
        for start in range(0, len(tokens), step):
            batch = tokens[start : start + step]
            n_past = self.n_tokens
            rows = self._ctx.decode(batch, n_past, self._logits_all)
            self.input_ids[n_past : n_past + len(batch)] = batch
            if self._logits_all:
                self.scores[n_past : n_past + len(batch), :] = rows
            if n_past == self._batched and len(batch) == step:
                self._batched += step
            self.n_tokens += len(batch)
        self._last_logits = rows[-1]
        return self._last_logits

    # ---- sampling and generation ---------------------------------------------------------

    def _sampler(
        self,
        temp: float,
        top_k: int,
        top_p: float,
        min_p: float,
        typical_p: float,
        repeat_penalty: float,
        frequency_penalty: float,
        presence_penalty: float,
        mirostat_mode: int,
        grammar: Any,
    ) -> _bitnet.Sampler:
        _refuse_unsupported_sampling(typical_p, mirostat_mode, grammar)
        last_n = self.last_n_tokens_size if self.last_n_tokens_size >= 0 else self._n_ctx
        return _bitnet.Sampler(
            temperature=temp,
            top_k=max(top_k, 0),  # llama.cpp: top_k <= 0 is off
            top_p=top_p,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            penalty_last_n=last_n,
            seed=self._seed % 2**64,
        )

    def sample(
        self,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_eta: float = 0.1,
        mirostat_tau: float = 5.0,
        penalize_nl: bool = True,
        logits_processor: Optional[Iterable[Callable]] = None,
        grammar: Any = None,
        idx: Optional[int] = None,
    ) -> int:
        """Samples a token from the logits of the last evaluated token (or of position ``idx``
        with logits_all), with a fresh sampler as llama-cpp-python does outside generate()."""
        if self.n_tokens == 0 or self._last_logits is None:
            raise ValueError("sample() needs evaluated tokens: call eval() first")
        logits = self._last_logits if idx is None or not self._logits_all else self.scores[idx]
        if logits_processor is not None:
            logits = _apply_processors(logits_processor, self._input_ids, logits)
        sampler = self._sampler(temp, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                                presence_penalty, mirostat_mode, grammar)
        return sampler.sample(logits)

    def generate(
        self,
        tokens: Sequence[int],
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        reset: bool = True,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        penalize_nl: bool = True,
        logits_processor: Optional[Iterable[Callable]] = None,
        stopping_criteria: Optional[Callable] = None,
        grammar: Any = None,
    ) -> Iterator[int]:
        """Yields sampled tokens after ``tokens``, without end (stop at EOS yourself). The
        longest prefix of ``tokens`` the context already holds is not evaluated again. Tokens
        sent into the generator are evaluated after the yielded one."""
        sampler = self._sampler(temp, top_k, top_p, min_p, typical_p, repeat_penalty, frequency_penalty,
                                presence_penalty, mirostat_mode, grammar)
        tokens = [int(t) for t in tokens]
        if reset:
            self._reuse_prefix(tokens)
        while True:
            logits = self._eval(tokens)
            if logits_processor is not None:
                logits = _apply_processors(logits_processor, self._input_ids, logits)
            token = sampler.sample(logits)
            if stopping_criteria is not None and stopping_criteria(self._input_ids, logits):
                return
            sent = yield token
            tokens = [token, *(int(t) for t in sent or [])]

    def _reuse_prefix(self, tokens: List[int]) -> None:
        """Keeps the evaluated tokens ``tokens`` starts with and removes them from ``tokens``;
        the rest of the context goes. Unlike llama-cpp-python (the longest common prefix), only
        whole chunks of n_batch tokens that were decoded together are kept: the engine's logits
        of a token depend on the batch it was decoded in, and so the result is the same as from
        a fresh context (greedy text as `bitnet run` prints it). The last token is always left
        to evaluate, for its logits."""
        prefix = _common_prefix_length(self._input_ids, tokens[:-1])
        prefix = min(prefix - prefix % self._batch_step(), self._batched)
        self.n_tokens = prefix
        del tokens[:prefix]
        if prefix > 0 and self.verbose:
            print(f"Llama.generate: {prefix} prefix-match hit, remaining {len(tokens)} prompt tokens to eval",
                  file=sys.stderr)

    # ---- completions ---------------------------------------------------------------------

    def create_completion(
        self,
        prompt: Union[str, List[int]],
        suffix: Optional[str] = None,
        max_tokens: Optional[int] = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: Optional[int] = None,
        echo: bool = False,
        stop: Optional[Union[str, List[str]]] = [],
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: Optional[int] = None,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        stopping_criteria: Optional[Callable] = None,
        logits_processor: Optional[Iterable[Callable]] = None,
        grammar: Any = None,
        logit_bias: Optional[Dict[int, float]] = None,
    ) -> Union[dict, Iterator[dict]]:
        """Generates text after ``prompt`` (a string, or token ids used as they are).

        Returns an OpenAI-style ``text_completion`` dict, or with ``stream`` an iterator of
        chunks whose texts concatenate to the same text. Generation ends at an end-of-
        generation token, a stop string (never part of the text), ``max_tokens`` (None or
        <= 0: until the context is full) or the end of the context.

        Raises:
            ValueError: the prompt does not fit the context, or an unsupported option.
            RuntimeError: the engine failed to evaluate.
        """
        if suffix is not None:
            raise ValueError("suffix (infill) is not supported by bitnet")
        _refuse_unsupported_sampling(typical_p, mirostat_mode, grammar)
        if logprobs is not None and not self._logits_all:
            raise ValueError("logprobs is not supported for models created with logits_all=False")
        request = self._completion_request(prompt, max_tokens, stop, logprobs, echo, model)
        # Once the request is valid: as llama-cpp-python, without a seed the next one follows
        # from the current one.
        if seed is not None:
            self.set_seed(seed)
        else:
            self.set_seed(random.Random(self._seed).randint(0, 2**32))
        processors = list(logits_processor or [])
        if logit_bias:
            processors.append(_logit_bias_processor(logit_bias))
        request.generate_args = dict(top_k=top_k, top_p=top_p, min_p=min_p, temp=temperature,
                                     repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                                     presence_penalty=presence_penalty, logits_processor=processors or None,
                                     stopping_criteria=stopping_criteria)
        if stream:
            return self._stream_chunks(request)
        text = "".join(piece for piece, _ in self._completion_pieces(request))
        return self._completion_result(request, text)

    def __call__(self, prompt: Union[str, List[int]], *args: Any, **kwargs: Any) -> Union[dict, Iterator[dict]]:
        """create_completion."""
        return self.create_completion(prompt, *args, **kwargs)

    def _completion_request(
        self,
        prompt: Union[str, List[int]],
        max_tokens: Optional[int],
        stop: Optional[Union[str, List[str]]],
        logprobs: Optional[int],
        echo: bool,
        model: Optional[str],
    ) -> _Completion:
        if isinstance(prompt, str):
            # As llama-cpp-python: BOS where the model adds it, control-token texts parsed.
            prompt_tokens = self.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            prompt_text = prompt
        else:
            prompt_tokens = [int(t) for t in prompt]
            prompt_text = self.detokenize(prompt_tokens).decode("utf-8", errors="ignore")
        if not prompt_tokens:
            raise ValueError("the prompt is empty and this model adds no BOS token to start from")
        if len(prompt_tokens) >= self._n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt_tokens)}) exceed context window of {self._n_ctx}")
        room = self._n_ctx - len(prompt_tokens)
        if max_tokens is None or max_tokens <= 0 or max_tokens > room:
            max_tokens = room
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        return _Completion(
            prompt_tokens=prompt_tokens,
            prompt_text=prompt_text,
            max_tokens=max_tokens,
            stop=[s.encode("utf-8") for s in stops if s],
            logprobs=logprobs,
            echo=echo,
            model_name=model if model is not None else self.model_path,
        )

    def _completion_pieces(self, request: _Completion) -> Iterator[Tuple[str, int]]:
        """Generates and yields ``(text, n_completion_tokens)`` as text becomes final: whole
        UTF-8 characters, never the start of what may become a stop string (held back until
        it is one, or is not). Sets the request's completion_tokens and finish_reason."""
        pending = b""
        for token in self.generate(request.prompt_tokens, **request.generate_args):
            if self._model.is_eog(token):
                request.finish_reason = "stop"
                break
            request.completion_tokens.append(token)
            pending += self._model.pieces([token], False)
            at = _find_stop(pending, request.stop)
            if at >= 0:
                request.finish_reason = "stop"
                yield pending[:at].decode("utf-8", errors="ignore"), len(request.completion_tokens)
                return
            ready = _releasable_length(pending, request.stop)
            if ready > 0:
                yield pending[:ready].decode("utf-8", errors="ignore"), len(request.completion_tokens)
                pending = pending[ready:]
            if len(request.completion_tokens) >= request.max_tokens:
                request.finish_reason = "length"
                break
        else:  # a stopping criterion ended the generator
            request.finish_reason = "stop"
        yield pending.decode("utf-8", errors="ignore"), len(request.completion_tokens)

    def _stream_chunks(self, request: _Completion) -> Iterator[dict]:
        """Stream chunks: one per piece of final text (with logprobs, those of the tokens
        generated since the previous chunk), then an empty one with the finish reason."""
        if request.echo:
            yield request.chunk(request.prompt_text, None, None)
        reported = 0
        for text, n_tokens in self._completion_pieces(request):
            logprobs = None
            if request.logprobs is not None and n_tokens > reported:
                logprobs = self._completion_logprobs(request, reported, n_tokens, echo=False)
            if text or logprobs is not None:
                yield request.chunk(text, logprobs, None)
                reported = n_tokens
        yield request.chunk("", None, request.finish_reason)

    def _completion_result(self, request: _Completion, text: str) -> dict:
        n_completion = len(request.completion_tokens)
        logprobs = None
        if request.logprobs is not None:
            logprobs = self._completion_logprobs(request, 0, n_completion, echo=request.echo)
        result = request.chunk(request.prompt_text + text if request.echo else text, logprobs, request.finish_reason)
        result["usage"] = {
            "prompt_tokens": len(request.prompt_tokens),
            "completion_tokens": n_completion,
            "total_tokens": len(request.prompt_tokens) + n_completion,
        }
        return result

    def _completion_logprobs(self, request: _Completion, begin: int, end: int, echo: bool) -> dict:
        """OpenAI's completion logprobs of completion tokens [begin, end) (with echo, of the
        prompt's tokens first, less a leading BOS; the first entry has none, as OpenAI's).
        The logits of the token at position p are row p - 1 of scores."""
        prompt = request.prompt_tokens
        if echo:
            skip = 1 if prompt[0] == self.token_bos() else 0
            first_position = skip
            tokens = prompt[skip:] + request.completion_tokens[begin:end]
            text_offset = 0
        else:
            first_position = len(prompt) + begin
            tokens = request.completion_tokens[begin:end]
            earlier = self.detokenize(request.completion_tokens[:begin]).decode("utf-8", errors="ignore")
            text_offset = len(request.prompt_text) + len(earlier)
        token_strs = [self._model.pieces([t], False).decode("utf-8", errors="ignore") for t in tokens]
        rows = np.arange(first_position, first_position + len(tokens)) - 1
        logprobs = _log_softmax(self.scores[np.maximum(rows, 0)])
        offsets, token_logprobs, top_logprobs = [], [], []
        for i, (token, token_str) in enumerate(zip(tokens, token_strs)):
            offsets.append(text_offset)
            text_offset += len(token_str)
            row = logprobs[i]
            best = np.argsort(-row, kind="stable")[: request.logprobs]
            top = {self._model.pieces([int(b)], False).decode("utf-8", errors="ignore"): float(row[b]) for b in best}
            top[token_str] = float(row[token])
            token_logprobs.append(float(row[token]))
            top_logprobs.append(top)
        if echo and tokens:
            token_logprobs[0] = None
            top_logprobs[0] = None
        return {"tokens": token_strs, "text_offset": offsets, "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs}

    # ---- chat ----------------------------------------------------------------------------

    def _resolve_chat_format(self, chat_format: Optional[str]) -> Optional[str]:
        """The built-in template name for ``chat_format`` (llama-cpp-python's names or the
        engine's: bitnet.chat_format_names()); None: the model's template, else chatml."""
        name = _CHAT_FORMAT_ALIASES.get(chat_format, chat_format) if chat_format is not None else ""
        try:
            return self._model.chat_template_name(name)
        except ValueError:
            if chat_format is not None:
                raise ValueError(
                    f"unknown chat_format '{chat_format}' (built in: {', '.join(_bitnet.chat_template_names())})"
                ) from None
            return None  # the model's own template is unknown: create_chat_completion says so

    def create_chat_completion(
        self,
        messages: List[Dict[str, Any]],
        functions: Optional[List[Any]] = None,
        function_call: Optional[Any] = None,
        tools: Optional[List[Any]] = None,
        tool_choice: Optional[Any] = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        stream: bool = False,
        stop: Optional[Union[str, List[str]]] = [],
        seed: Optional[int] = None,
        response_format: Optional[Dict[str, Any]] = None,
        max_tokens: Optional[int] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        logits_processor: Optional[Iterable[Callable]] = None,
        grammar: Any = None,
        logit_bias: Optional[Dict[int, float]] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
    ) -> Union[dict, Iterator[dict]]:
        """A reply to ``messages`` ({"role": "system"|"user"|"assistant", "content": ...})
        rendered with the chat format: a ``chat.completion`` dict, or with ``stream``
        ``chat.completion.chunk`` chunks (a first ``{"role": "assistant"}`` delta, content
        deltas, then the finish reason)."""
        if functions or function_call or tools or tool_choice:
            raise ValueError("function and tool calls are not supported by bitnet")
        if response_format is not None and response_format.get("type", "text") != "text":
            raise ValueError("response_format other than text needs grammars, which bitnet does not support")
        if self.chat_format is None:
            raise ValueError(
                "the model's chat template is not one of the built-in ones; pass chat_format= "
                f"({', '.join(_bitnet.chat_template_names())})"
            )
        turns = [(m["role"], _message_text(m)) for m in messages]
        rendered = self._model.apply_chat_template(self.chat_format, turns, True)
        # As `bitnet chat`: BOS where the model adds one, the template's control tokens parsed.
        prompt = self.tokenize(rendered.encode("utf-8"), add_bos=True, special=True)
        completion = self.create_completion(
            prompt=prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p, min_p=min_p,
            typical_p=typical_p, logprobs=top_logprobs if logprobs else None, stop=stop,
            frequency_penalty=frequency_penalty, presence_penalty=presence_penalty, repeat_penalty=repeat_penalty,
            top_k=top_k, stream=stream, seed=seed, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model, logits_processor=logits_processor,
            grammar=grammar, logit_bias=logit_bias)
        if stream:
            return _chat_chunks(completion)
        return _chat_completion(completion)

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the context and the model now (a Llama cannot be used after this)."""
        for resource in (getattr(self, "_ctx", None), getattr(self, "_model", None)):
            if resource is not None:
                resource.close()

    def __enter__(self) -> "Llama":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    @staticmethod
    def logits_to_logprobs(logits: Union[npt.NDArray[np.single], List], axis: int = -1) -> npt.NDArray[np.single]:
        return _log_softmax(np.asarray(logits, dtype=np.single), axis)

    @staticmethod
    def longest_token_prefix(a: Sequence[int], b: Sequence[int]) -> int:
        return _common_prefix_length(a, b)


# ---- helpers ---------------------------------------------------------------------------


def _check_llama_kwargs(kwargs: Dict[str, Any]) -> None:
    for name, value in kwargs.items():
        if name in _UNSUPPORTED_LLAMA_ARGS:
            if value != _UNSUPPORTED_LLAMA_ARGS[name]:
                raise ValueError(f"{name}={value!r} is not supported by bitnet")
        else:
            logger.debug("Llama: ignoring %s=%r (it does not apply to bitnet)", name, value)


def _refuse_unsupported_sampling(typical_p: float, mirostat_mode: int, grammar: Any) -> None:
    if typical_p != 1.0:
        raise ValueError("typical_p is not supported by bitnet (use 1.0)")
    if mirostat_mode != 0:
        raise ValueError("mirostat sampling is not supported by bitnet (use mirostat_mode=0)")
    if grammar is not None:
        raise ValueError("grammars are not supported by bitnet")


def _apply_processors(
    processors: Iterable[Callable], input_ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]
) -> npt.NDArray[np.single]:
    scores = np.array(logits, dtype=np.single)  # a copy the processors may change
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores


def _logit_bias_processor(logit_bias: Dict[int, float]) -> Callable:
    bias = {int(token): float(value) for token, value in logit_bias.items()}

    def add_bias(input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        for token, value in bias.items():
            scores[token] += value
        return scores

    return add_bias


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _log_softmax(logits: npt.NDArray[np.single], axis: int = -1) -> npt.NDArray[np.single]:
    maxima = np.amax(logits, axis=axis, keepdims=True)
    maxima[~np.isfinite(maxima)] = 0
    shifted = np.subtract(logits, maxima, dtype=np.single)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _find_stop(text: bytes, stops: List[bytes]) -> int:
    """Where the earliest stop string starts in ``text``; -1 when none does."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found, default=-1)


def _releasable_length(pending: bytes, stops: List[bytes]) -> int:
    """How much of ``pending`` can be returned: all but its longest end that begins a stop
    string, and whole UTF-8 characters only. (No stop string can then straddle text already
    returned and ``pending``: it would have begun in the part held back.)"""
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(pending)), held, -1):
            if pending.endswith(stop[:k]):
                held = k
                break
    return _utf8_complete_length(pending, len(pending) - held)


def _utf8_complete_length(data: bytes, end: int) -> int:
    """``end``, or less so that data[:end] does not end inside a UTF-8 character."""
    for back in range(1, min(4, end) + 1):
        lead = data[end - back]
        if lead & 0xC0 != 0x80:  # ASCII or a lead byte (invalid bytes count as complete)
            length = 2 if lead >> 5 == 0x6 else 3 if lead >> 4 == 0xE else 4 if lead >> 3 == 0x1E else 1
            return end - back if length > back else end
    return end


def _message_text(message: Dict[str, Any]) -> str:
    """A message's content: a string, None, or OpenAI's list of text parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise ValueError(f"message content of type {part.get('type')!r} is not supported (text only)")
        texts.append(part["text"])
    return "".join(texts)


def _chat_logprobs(logprobs: Optional[dict]) -> Optional[dict]:
    if logprobs is None:
        return None
    return {
        "content": [
            {
                "token": token,
                "bytes": None,
                "logprob": logprob,
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in (top or {}).items()],
            }
            for token, logprob, top in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"])
        ],
        "refusal": None,
    }


def _chat_completion(completion: dict) -> dict:
    choice = completion["choices"][0]
    return {
        "id": "chat" + completion["id"],
        "object": "chat.completion",
        "created": completion["created"],
        "model": completion["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice["text"]},
                "logprobs": _chat_logprobs(choice["logprobs"]),
                "finish_reason": choice["finish_reason"],
            }
        ],
        "usage": completion["usage"],
    }


def _chat_chunks(chunks: Iterator[dict]) -> Iterator[dict]:
    for i, chunk in enumerate(chunks):
        head = {"id": "chat" + chunk["id"], "model": chunk["model"], "created": chunk["created"],
                "object": "chat.completion.chunk"}
        if i == 0:
            yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                                        "finish_reason": None}]}
        choice = chunk["choices"][0]
        delta = {"content": choice["text"]} if choice["finish_reason"] is None else {}
        yield {**head, "choices": [{"index": 0, "delta": delta, "logprobs": _chat_logprobs(choice["logprobs"]),
                                    "finish_reason": choice["finish_reason"]}]}
