#!/usr/bin/env python3
"""engine_host.py - a Python host of the engine's C API (ra3_engine.h, libra3_engine) through
ctypes alone: the same steps and the same printed lines as engine_host.c (load, tokenize, score,
greedy generation through the KV cache, the temporal-ELBO inference, a deliberate error).

usage: engine_host.py LIBRA3_ENGINE MODEL TOKENIZER TEXT_FILE [PROMPT_IDS]
  LIBRA3_ENGINE: the path of libra3_engine.so; PROMPT_IDS: comma-separated ids to continue
  (default: the text's first four tokens)
"""
import ctypes as C
import sys

NEW_TOKENS = 10
LINES = 3


class EngineError(Exception):
    """A call that returned a status other than RA3_ENGINE_OK, with ra3_engine_last_error()."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Engine:
    """One loaded model: ra3_engine_load on construction, ra3_engine_free on close()."""

    def __init__(self, library, model, tokenizer=None, backend="cpu"):
        self.lib = C.CDLL(library)
        self.lib.ra3_engine_version.restype = C.c_char_p
        self.lib.ra3_engine_last_error.restype = C.c_char_p
        self.lib.ra3_engine_load.argtypes = [C.c_char_p, C.c_char_p, C.c_char_p, C.POINTER(C.c_void_p)]
        self.lib.ra3_engine_free.argtypes = [C.c_void_p]
        self.lib.ra3_engine_tokenize.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_int32), C.c_int32, C.POINTER(C.c_int32)]
        self.lib.ra3_engine_detokenize.argtypes = [C.c_void_p, C.POINTER(C.c_int32), C.c_int32, C.c_char_p, C.c_int32, C.POINTER(C.c_int32)]
        self.lib.ra3_engine_model_info.argtypes = [C.c_void_p, C.POINTER(C.c_int32), C.POINTER(C.c_int32)]
        self.lib.ra3_engine_score.argtypes = [C.c_void_p, C.POINTER(C.c_int32), C.c_int32, C.POINTER(C.c_float), C.POINTER(C.c_double)]
        self.lib.ra3_engine_generate.argtypes = [C.c_void_p, C.POINTER(C.c_int32), C.c_int32, C.c_int32, C.c_float, C.c_int32,
                                                 C.c_float, C.c_uint64, C.POINTER(C.c_int32), C.POINTER(C.c_int32)]
        self.lib.ra3_engine_elbo.argtypes = [C.c_char_p, C.POINTER(C.c_float), C.POINTER(C.c_float), C.c_int32, C.c_double,
                                             C.c_double, C.c_int32, C.POINTER(C.c_double), C.POINTER(C.c_float), C.POINTER(C.c_int32)]
        self.handle = C.c_void_p()
        self._check(self.lib.ra3_engine_load(model.encode(), tokenizer and tokenizer.encode(), backend.encode(), C.byref(self.handle)))

    def _check(self, status):
        if status != 0:
            raise EngineError(status, self.lib.ra3_engine_last_error().decode())

    @property
    def version(self):
        return self.lib.ra3_engine_version().decode()

    def tokenize(self, text):
        data, count = text.encode(), C.c_int32()
        self._check(self.lib.ra3_engine_tokenize(self.handle, data, None, 0, C.byref(count)))
        ids = (C.c_int32 * count.value)()
        self._check(self.lib.ra3_engine_tokenize(self.handle, data, ids, count, C.byref(count)))
        return list(ids)

    def detokenize(self, ids):
        array, length = (C.c_int32 * len(ids))(*ids), C.c_int32()
        self._check(self.lib.ra3_engine_detokenize(self.handle, array, len(ids), None, 0, C.byref(length)))
        text = C.create_string_buffer(length.value + 1)
        self._check(self.lib.ra3_engine_detokenize(self.handle, array, len(ids), text, len(text), C.byref(length)))
        return text.value.decode()

    def model_info(self):
        """(vocabulary size, most positions)."""
        vocab, positions = C.c_int32(), C.c_int32()
        self._check(self.lib.ra3_engine_model_info(self.handle, C.byref(vocab), C.byref(positions)))
        return vocab.value, positions.value

    def score(self, ids):
        """Per-token log-probabilities [len(ids) - 1] and the mean loss, as `ra3 score` computes them."""
        logprobs, mean_loss = (C.c_float * max(len(ids) - 1, 0))(), C.c_double()
        self._check(self.lib.ra3_engine_score(self.handle, (C.c_int32 * len(ids))(*ids), len(ids), logprobs, C.byref(mean_loss)))
        return list(logprobs), mean_loss.value

    def generate(self, prompt, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=0):
        out, produced = (C.c_int32 * max_new_tokens)(), C.c_int32()
        self._check(self.lib.ra3_engine_generate(self.handle, (C.c_int32 * len(prompt))(*prompt), len(prompt), max_new_tokens,
                                                 temperature, top_k, top_p, seed, out, C.byref(produced)))
        return list(out)[:produced.value]

    def elbo(self, seg, lines, alpha=0.5, think_cost=0.05, max_span=0, rationale_logprobs=None, backend=None):
        """log Z, the think posteriors [lines] and the kept boundaries [lines] of one scored trace."""
        log_z, posterior, kept = C.c_double(), (C.c_float * lines)(), (C.c_int32 * lines)()
        rationales = (C.c_float * lines)(*rationale_logprobs) if rationale_logprobs is not None else None
        self._check(self.lib.ra3_engine_elbo(backend and backend.encode(), (C.c_float * len(seg))(*seg), rationales, lines, alpha,
                                             think_cost, max_span, C.byref(log_z), posterior, kept))
        return log_z.value, list(posterior), list(kept)

    def close(self):
        self._check(self.lib.ra3_engine_free(self.handle))


def example_trace():
    """engine_host.c's scored trace of LINES lines whose rationales help: seg[j][t] = log pi(line t | abstraction j),
    [LINES + 1, LINES] row-major, in binary fractions so that every host builds the same floats."""
    return [-2.0 - 0.5 * t + (1.25 / (1 << (j - 1)) if 0 < j <= t + 1 else 0.0) for j in range(LINES + 1) for t in range(LINES)]


def main(argv):
    if len(argv) not in (5, 6):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    library, model, tokenizer, text_file = argv[1:5]
    with open(text_file, encoding="utf-8") as f:
        text = f.read()
    engine = Engine(library, model, tokenizer)
    print(f"ra3_engine {engine.version}")
    ids = engine.tokenize(text)
    logprobs, mean_loss = engine.score(ids)
    print(f"tokens {len(ids)}: " + " ".join(map(str, ids)))
    print("logprobs: " + " ".join("%.9g" % x for x in logprobs))
    print("mean loss %.6f over %d targets" % (mean_loss, len(ids) - 1))
    prompt = [int(x) for x in argv[5].split(",")] if len(argv) == 6 else ids[:4]
    print("greedy: " + " ".join(map(str, engine.generate(prompt, NEW_TOKENS))))
    engine.close()

    log_z, posterior, kept = engine.elbo(example_trace(), LINES)
    print("elbo log_z %.9g; think posterior %s; kept %s" % (log_z, " ".join("%.9g" % p for p in posterior), " ".join(map(str, kept))))

    try:
        engine.score([])
    except EngineError as e:
        print(f"expected error reported: {e}")
        return 0
    print("a freed model was accepted", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
