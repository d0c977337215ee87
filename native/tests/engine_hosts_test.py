#!/usr/bin/env python3
"""The engine's C API from its two example hosts (ctest engine_hosts).

Runs `ra3 score` on a fixture text, then the C host (engine_host.c) and the Python ctypes host
(engine_host.py) on the same model, tokenizer and text, and checks that
  - both print the same lines, byte for byte;
  - their ids are the ones Hugging Face `tokenizers` gives the text (the fixture's reference);
  - their per-token log-probabilities and mean loss are `ra3 score`'s;
  - their greedy continuation of the fixture's prompt is the one `transformers` generated;
  - their ELBO (log Z, think posteriors, kept rationales) is what enumerating every think/act
    assignment gives;
  - a freed handle is refused with a message naming it;
and, through the Python wrapper, that the "native" backend (libra3_native beside libra3_engine)
scores as "cpu" does, that decoding gives the text back, that the model's sizes are reported, and
that bad input comes back as one line naming what is wrong.
"""
import argparse
import itertools
import json
import math
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "native", "examples"))
import engine_host  # noqa: E402  (the example's wrapper, found through the path above)

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def shared_folder():
    path = os.environ.get("RA3_SHARED") or os.path.join(REPO, "..", "shared")
    if not os.path.isdir(os.path.join(path, "fixtures", "hf")):
        sys.exit(f"the fixtures are not at {os.path.abspath(path)}/fixtures/hf (set RA3_SHARED to the folder holding fixtures/)")
    return path


def read_safetensors(path):
    """{name: (shape, values)} of a safetensors file's F32 and I64 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header, body, tensors = json.loads(data[8:8 + size]), data[8 + size:], {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        code = {"F32": "f", "I64": "q"}[info["dtype"]]
        count = (end - start) // struct.calcsize(code)
        tensors[name] = (info["shape"], list(struct.unpack(f"<{count}{code}", body[start:end])))
    return tensors


def parse(output):
    """The host's lines by their first word(s)."""
    lines = {}
    for line in output.splitlines():
        key = "mean loss" if line.startswith("mean loss") else "expected error" if line.startswith("expected error") else line.split(" ")[0].rstrip(":")
        lines[key] = line
    return lines


def brute_force_elbo(seg, lines, alpha, think_cost):
    """log Z, P(think at each boundary) and the MAP's thinks, over all 2^lines assignments."""
    act, think = math.log(alpha), math.log(1 - alpha) - think_cost
    weights = {}
    for mask in itertools.product([0, 1], repeat=lines):
        state, w = 0, 0.0
        for t, thinks in enumerate(mask):
            state, w = (t + 1, w + think) if thinks else (state, w + act)
            w += seg[state * lines + t]
        weights[mask] = w
    top = max(weights.values())
    log_z = top + math.log(sum(math.exp(w - top) for w in weights.values()))
    posterior = [sum(math.exp(w - log_z) for m, w in weights.items() if m[t]) for t in range(lines)]
    return log_z, posterior, list(max(weights, key=weights.get))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--c-host", required=True)
    parser.add_argument("--library", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    shared = shared_folder()
    model = os.path.join(shared, "fixtures", "hf", "llama-tiny")
    tokenizer = os.path.join(shared, "fixtures", "hf", "tokenizer-bpe512")
    with open(os.path.join(tokenizer, "reference.json")) as f:
        case = json.load(f)["cases"][0]
    text_file = os.path.join(args.work, "text.txt")
    with open(text_file, "w") as f:
        f.write(case["text"])
    reference = read_safetensors(os.path.join(model, "reference.safetensors"))
    prompt = reference["generate.prompt"][1]
    continuation = reference["generate.output"][1][len(prompt):]

    # ra3 score: the numbers every host must print.
    scores = os.path.join(args.work, "scores.safetensors")
    ra3 = subprocess.run(["dotnet", "run", "--project", os.path.join(REPO, "src", "RA3.Train"), "-c", "Release", "--",
                          "score", "--model", model, "--tokenizer", tokenizer, "--text", text_file, "--out", scores],
                         capture_output=True, text=True)
    if ra3.returncode != 0:
        sys.exit(f"ra3 score failed ({ra3.returncode}):\n{ra3.stdout}{ra3.stderr}")
    ra3_line = next(line for line in ra3.stdout.splitlines() if line.startswith("mean loss"))
    ra3_logprobs = read_safetensors(scores)["logprobs"][1]
    print(f"ra3 score: {ra3_line}")

    hosts = {
        "C host": [args.c_host, model, tokenizer, text_file, ",".join(map(str, prompt))],
        "Python host": [sys.executable, os.path.join(REPO, "native", "examples", "engine_host.py"), args.library, model, tokenizer,
                        text_file, ",".join(map(str, prompt))],
    }
    outputs = {}
    for name, command in hosts.items():
        run = subprocess.run(command, capture_output=True, text=True)
        print(f"--- {name}\n{run.stdout}{run.stderr}", end="")
        if run.returncode != 0:
            failures.append(f"{name} exited with {run.returncode}")
            continue
        outputs[name] = run.stdout
        lines = parse(run.stdout)
        ids = [int(x) for x in lines["tokens"].split(":")[1].split()]
        check(ids == case["ids"], f"{name}: ids {ids} are not tokenizers' {case['ids']}")
        logprobs = [float(x) for x in lines["logprobs"].split()[1:]]
        worst = max((abs(a - b) for a, b in zip(logprobs, ra3_logprobs)), default=math.inf)
        check(len(logprobs) == len(ra3_logprobs) and worst <= 1e-6,
              f"{name}: {len(logprobs)} log-probabilities, {len(ra3_logprobs)} from ra3 score, largest difference {worst}")
        check(lines["mean loss"].split(" over ")[0] == ra3_line.split(" over ")[0], f"{name}: '{lines['mean loss']}' but ra3 score printed '{ra3_line}'")
        greedy = [int(x) for x in lines["greedy"].split()[1:]]
        check(greedy == continuation, f"{name}: greedy continuation {greedy}, transformers generated {continuation}")
        check("is not a loaded model" in lines.get("expected error", ""), f"{name}: no error for a freed model handle")

        elbo = lines["elbo"].replace(";", "").split()
        n = engine_host.LINES
        log_z, posterior, kept = float(elbo[2]), [float(x) for x in elbo[5:5 + n]], [int(x) for x in elbo[6 + n:6 + 2 * n]]
        want_z, want_posterior, want_kept = brute_force_elbo(engine_host.example_trace(), n, 0.5, 0.05)
        check(abs(log_z - want_z) <= 1e-5 and all(abs(a - b) <= 1e-5 for a, b in zip(posterior, want_posterior)) and kept == want_kept,
              f"{name}: ELBO {log_z} {posterior} {kept}, enumeration gives {want_z} {want_posterior} {want_kept}")
    if len(outputs) == 2:
        check(outputs["C host"] == outputs["Python host"], "the C and Python hosts printed different lines")

    # The native backend, from libra3_native beside libra3_engine, scores as cpu does.
    native = engine_host.Engine(args.library, model, tokenizer, backend="native")
    native_logprobs, _ = native.score(case["ids"])
    native.close()
    worst = max(abs(a - b) for a, b in zip(native_logprobs, ra3_logprobs))
    check(worst <= 1e-4, f"native backend: log-probabilities differ from cpu's by {worst}")

    # Decoding gives the text back; the model's sizes are its config.json's.
    engine = engine_host.Engine(args.library, model, tokenizer)
    check(engine.detokenize(case["ids"]) == case["text"], f"detokenize gave {engine.detokenize(case['ids'])!r}, not {case['text']!r}")
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    check(engine.model_info() == (config["vocab_size"], config["max_position_embeddings"]), f"model_info {engine.model_info()}")

    # Bad input: one line naming what is wrong, and the status that says what kind.
    for call, status, words in [
        (lambda: engine.score([1]), 1, "ids: 1 tokens, at least 2 needed"),
        (lambda: engine.score([1, 512]), 1, "512"),
        (lambda: engine.generate([1], 0), 1, "max_new_tokens = 0"),
        (lambda: engine.elbo([0.0] * 12, 3, alpha=1.0), 1, "alpha"),
        (lambda: engine_host.Engine(args.library, "/nonexistent/model"), 5, "/nonexistent/model"),
        (lambda: engine_host.Engine(args.library, model, tokenizer, backend="cuda"), 1, "'cuda' is not a host backend"),
    ]:
        try:
            call()
            failures.append(f"no error for a call expected to fail with '{words}'")
        except engine_host.EngineError as e:
            print(f"refused: {e}")
            check(e.status == status and words in str(e) and "\n" not in str(e), f"status {e.status}, message '{e}': expected {status} naming '{words}'")
    engine.close()

    for failure in failures:
        print(f"FAILED: {failure}")
    print("engine hosts: " + ("every check passed" if not failures else f"{len(failures)} check(s) failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
