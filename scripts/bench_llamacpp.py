#!/usr/bin/env python3
"""llama.cpp baseline for `aisle bench llm --json`: prefill and decode speed of one GGUF on the CPU.

Prompt: bench/llm-prompt.txt tokenized by the model's own tokenizer (llama.cpp /tokenize, no BOS or
other special tokens), repeated end to end and cut to exactly N token ids, which go to llama.cpp as
the prompt. M tokens are generated greedily (temperature 0) with end-of-sequence ignored. One small
warm-up run, then the median of --runs timed runs (each metric's median taken on its own). The KV
cache is not reused between runs (cache_prompt false), so every run prefills all N tokens.

Timings are llama.cpp's own ("timings" of the final streamed chunk), not a Python clock:
  ttft_ms       = prompt_ms      (start of prompt processing -> first token sampled)
  prefill_tok_s = N / prompt_ms * 1000
  decode_tok_s  = predicted_per_second, which llama.cpp computes as (predicted_n - 1) / predicted_ms,
                  predicted_ms running from the first generated token to the last: (M-1)/(t_last-t_first)
  rss_mb        = peak RSS of this process (ru_maxrss / 1024) after all runs
The client-side clock (request submitted -> first / last streamed chunk) is logged to stderr only.
Uses xllamacpp (llama.cpp's server in-process); see scripts/bench-llamacpp.sh for the pinned version.
"""
import argparse, json, os, resource, statistics, sys, time, urllib.request

import xllamacpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = os.path.join(ROOT, "bench/llm-prompt.txt")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def tokenize(server, text):
    # This xllamacpp's Server has no tokenize method, but it serves llama.cpp's HTTP API on localhost.
    body = json.dumps({"content": text, "add_special": False, "parse_special": False}).encode()
    req = urllib.request.Request(server.listening_address + "/tokenize", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["tokens"]


def run_once(server, ids, m):
    chunks = []
    req = {"prompt": ids, "n_predict": m, "temperature": 0, "ignore_eos": True,
           "cache_prompt": False, "stream": True}

    def on_chunk(d):  # called on llama.cpp's thread for each streamed chunk; False = keep going
        chunks.append((time.perf_counter(), d))
        return False

    t0 = time.perf_counter()
    server.handle_completions(req, on_chunk)
    final = chunks[-1][1] if chunks else {}
    t = final.get("timings")
    if not t:
        raise SystemExit(f"llama.cpp returned no timings: {final}")
    if t["prompt_n"] != len(ids) or t["predicted_n"] != m:
        raise SystemExit(f"expected {len(ids)} prompt / {m} generated tokens, got {t}")
    toks = [ts for ts, d in chunks if "timings" not in d]  # one chunk per generated token
    client = (toks[0] - t0) * 1000, (m - 1) / (toks[-1] - toks[0]) if len(toks) > 1 else 0.0
    return t, client


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    a = ap.parse_args()
    n, m, model = a.prompt_tokens, a.gen_tokens, os.path.abspath(a.model)

    p = xllamacpp.CommonParams()
    p.model.path = model
    p.n_ctx = n + m
    p.n_batch = p.n_ubatch = max(n, 16)       # the whole prompt in one batch
    p.n_parallel = 1
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = a.threads
    p.cache_ram_mib = 0                       # no host-memory prompt cache
    p.n_threads_http = 1                      # HTTP is only used for /tokenize
    p.verbosity = 0                           # silence llama.cpp's log
    log(f"xllamacpp {xllamacpp.__version__}: {xllamacpp.get_system_info().strip()}")
    log(f"loading {model} (threads {a.threads}, n_ctx {p.n_ctx}, n_batch {p.n_batch})")
    server = xllamacpp.Server(p)

    base = tokenize(server, open(PROMPT, encoding="utf-8").read())
    ids = (base * (n // len(base) + 1))[:n]
    log(f"prompt: {len(base)} tokens in {os.path.relpath(PROMPT, ROOT)}, using {n}; generating {m}")

    run_once(server, (base * 16)[:16], 4)     # warm-up
    results = []
    for i in range(a.runs):
        t, (c_ttft, c_decode) = run_once(server, ids, m)
        results.append(t)
        log(f"run {i + 1}: prompt_ms {t['prompt_ms']:.1f} ({t['prompt_per_second']:.1f} tok/s), "
            f"decode {t['predicted_per_second']:.1f} tok/s | client clock: ttft {c_ttft:.1f} ms, "
            f"decode {c_decode:.1f} tok/s")

    med = lambda k: statistics.median(r[k] for r in results)
    out = {
        "model": model, "threads": a.threads, "prompt_tokens": n, "gen_tokens": m,
        "prefill_tok_s": round(n / med("prompt_ms") * 1000, 2),
        "decode_tok_s": round(med("predicted_per_second"), 2),
        "ttft_ms": round(med("prompt_ms"), 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if not a.json:
        for k, v in out.items():
            print(f"{k:>14}: {v}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
