/*
 * ra3_engine.h - the engine's C API (libra3_engine): load a Hugging Face model folder, tokenize,
 * score text (per-token log-probabilities), generate with a KV cache, and run the temporal-ELBO
 * inference of RA3 on a scored trace, on the CPU backends, from C or any language with a C FFI.
 *
 * libra3_engine is the managed engine (RA3.Model on RA3.Kernels, src/RA3.CApi) compiled ahead of
 * time by NativeAOT: a host needs no .NET installation. It computes what `ra3 score` and the EM
 * loop compute, with the same code. Its "native" backend loads libra3_native (ra3.h) from the
 * folder libra3_engine lies in; "cpu" and "reference" need nothing else.
 *
 * Conventions (those of ra3.h)
 *  - Every function but ra3_engine_version and ra3_engine_last_error returns an ra3_engine_status.
 *    On anything but RA3_ENGINE_OK, ra3_engine_last_error() returns one line naming the function
 *    and what was wrong (the argument, the file, the value); it is thread-local and valid until
 *    the next call on the same thread. No exception and no abort crosses this API.
 *  - Strings are NUL-terminated UTF-8. Arrays are owned by the caller; their sizes are stated below.
 *  - A model handle comes from ra3_engine_load and is released by ra3_engine_free; a handle that
 *    was freed or never loaded is refused (RA3_ENGINE_ERR_INVALID_ARGUMENT), not dereferenced.
 *    Calls on one model from several threads are serialised by the model; different models run
 *    in parallel.
 *  - Token ids are int32; text positions follow the Hugging Face causal-LM convention: the
 *    token at position t is predicted from positions 0..t-1.
 */
#ifndef RA3_ENGINE_H
#define RA3_ENGINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every call; the codes of ra3.h's ra3_status plus RA3_ENGINE_ERR_IO. */
typedef enum ra3_engine_status {
    RA3_ENGINE_OK = 0,
    RA3_ENGINE_ERR_INVALID_ARGUMENT = 1, /**< a null pointer, a size out of range, an unknown
                                              backend or handle, an id outside the vocabulary */
    RA3_ENGINE_ERR_OUT_OF_MEMORY = 2,
    RA3_ENGINE_ERR_UNSUPPORTED = 3,      /**< this machine or build cannot do it (libra3_native
                                              missing or of another ABI for the "native" backend) */
    RA3_ENGINE_ERR_INTERNAL = 4,         /**< an unexpected error, named by its type */
    RA3_ENGINE_ERR_IO = 5                /**< a file missing, unreadable or malformed */
} ra3_engine_status;

/** A loaded model with its tokenizer and backend (opaque). */
typedef struct ra3_engine_model ra3_engine_model;

/** Engine version, "MAJOR.MINOR.PATCH" (the version of the packages and of ra3_native). */
const char* ra3_engine_version(void);

/** Message describing the last failed call on this thread ("" if none). */
const char* ra3_engine_last_error(void);

/**
 * Loads a model: `model` is a Hugging Face folder (config.json + model.safetensors or shards), a
 * training checkpoint folder, or a run folder (its latest checkpoint), as `ra3 score --model`
 * takes. `tokenizer` is "bytes", "gpt2", a tokenizer.json or a folder holding one; NULL means the
 * model folder's tokenizer.json. `backend` is "cpu" (managed SIMD kernels; NULL means "cpu"),
 * "native" (libra3_native's C++ kernels) or "reference" (plain loops, slow). *out receives the
 * handle, or NULL on failure.
 */
ra3_engine_status ra3_engine_load(const char* model, const char* tokenizer, const char* backend,
                                  ra3_engine_model** out);

/** Releases a model and everything it holds. NULL is accepted and does nothing. */
ra3_engine_status ra3_engine_free(ra3_engine_model* model);

/** The model's vocabulary size (logits per position) and the most positions one sequence may hold. */
ra3_engine_status ra3_engine_model_info(ra3_engine_model* model, int32_t* vocab_size,
                                        int32_t* max_positions);

/**
 * Tokenizes `text` into ids[0..capacity). *count receives the number of ids the text has; more
 * than capacity is an error. ids = NULL with capacity = 0 only asks for the count.
 */
ra3_engine_status ra3_engine_tokenize(ra3_engine_model* model, const char* text, int32_t* ids,
                                      int32_t capacity, int32_t* count);

/**
 * Decodes ids[0..count) into text (UTF-8, NUL-terminated; invalid UTF-8 becomes U+FFFD).
 * *length receives the text's length in bytes without the NUL; length + 1 above capacity is an
 * error. text = NULL with capacity = 0 only asks for the length.
 */
ra3_engine_status ra3_engine_detokenize(ra3_engine_model* model, const int32_t* ids, int32_t count,
                                        char* text, int32_t capacity, int32_t* length);

/**
 * Scores one sequence ids[0..count), count >= 2: logprobs[t] = log p(ids[t+1] | ids[0..t]) for
 * t < count - 1 (logprobs holds count - 1 floats) and *mean_loss = -mean(logprobs) in nats: the
 * numbers `ra3 score` prints and writes for the same ids.
 */
ra3_engine_status ra3_engine_score(ra3_engine_model* model, const int32_t* ids, int32_t count,
                                   float* logprobs, double* mean_loss);

/**
 * Continues prompt[0..prompt_count) (at least one token) by up to max_new_tokens tokens through
 * the KV cache: one prefill, then one decode step per token. temperature 0 is greedy (arg max);
 * otherwise tokens are drawn from softmax(logits / temperature) restricted to the top_k most
 * likely (0: all) and to the smallest set whose probability reaches top_p (1: all), from a
 * stream fixed by seed. Generation stops early after the model's end-of-sequence token (which is
 * kept). out holds max_new_tokens ids; *produced receives how many were written.
 */
ra3_engine_status ra3_engine_generate(ra3_engine_model* model, const int32_t* prompt,
                                      int32_t prompt_count, int32_t max_new_tokens,
                                      float temperature, int32_t top_k, float top_p, uint64_t seed,
                                      int32_t* out, int32_t* produced);

/**
 * The temporal-ELBO inference of RA3 (shared/docs/ra3-method.md sections 2-4) on one scored
 * trace of T = lines code lines: seg [T+1, T] row-major, seg[j*T + t] = log pi(line t+1 |
 * abstraction j), j = 0 no rationale, j >= 1 the rationale sampled at boundary j;
 * rationale_logprobs [T] the log-probability of each boundary's rationale, entering its prior when
 * not NULL. The prior: an abstraction persists with probability alpha (0 < alpha < 1), a new
 * rationale costs log(1 - alpha) - think_cost; max_span > 0 limits the lines one rationale covers.
 * Outputs: *log_z the exact log-marginal over think/act decisions; think_posterior [T] the
 * probability of a think at each boundary; kept [T] 1 where the MAP segmentation keeps the
 * boundary's rationale, else 0. backend as in ra3_engine_load (NULL: "cpu").
 */
ra3_engine_status ra3_engine_elbo(const char* backend, const float* seg,
                                  const float* rationale_logprobs, int32_t lines, double alpha,
                                  double think_cost, int32_t max_span, double* log_z,
                                  float* think_posterior, int32_t* kept);

#ifdef __cplusplus
}
#endif

#endif /* RA3_ENGINE_H */
