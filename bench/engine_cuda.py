#!/usr/bin/env python3
"""engine_cuda.py -- the Tasting Room engine with every hot op cooked, against
transformers, end to end (issue 13's performance table), on the GPU host.

One process, one device, the same weights and prompts for everyone:

  1. the Qwen3-4B shape (36 layers, hidden 2560, 32 query / 8 KV heads, head
     dim 128, per-head q/k RMSNorm, RoPE theta 1e6, SwiGLU 9728, tied
     embeddings, vocab 151936) with random bf16 weights drawn on the GPU from
     a fixed seed by scripts/golden_qwen3.py (make_checkpoint_4b), saved by
     transformers as safetensors into --workdir (about 8 GB; reused when it
     holds the same draw);
  2. prompts of 512 and 2048 fixed pseudo-random token ids (Python's random
     with --prompt-seed), written to WORKDIR/prompt_S.txt for --prompt-ids;
  3. the engine in configurations of its op slots (src/engine/op_slot.h),
     each one `emile taste --device cuda --model WORKDIR --reference OP=K ...
     --prompt-ids F --max-new 128 --json --stop -1 --warmup W` (one side:
     the engine with those kernels), --engine-repeats processes each
     (medians): "reference" (the engine's own ops everywhere: cuBLAS
     projections, its own attention), each cooked op added alone (so each
     op's gain is visible), and every op at once.  The cooked kernel of an
     op is examples/best_kernels/<op>.{so,cu} when a cook exported one
     there, else its ladder's top rung at its defaults (for the attention,
     rung7_wgmma: examples/best_kernels/README.md); .cu files are built with
     the harness's nvcc line into --kernel-dir (build/op-kernels, where
     `bash bench/gpu_session.sh engine-build` puts them) unless there.  The
     reference and every-op configurations also run with --breakdown (an
     untimed generation with each op timed by CUDA events: per-op time per
     prefill and per decode step, against each op's floor);
  4. transformers (Qwen3ForCausalLM.from_pretrained of that directory,
     bf16), greedy, 128 new tokens: "sdpa" (the default dynamic KV cache,
     eager PyTorch), "compiled" (the gpt-fast recipe a PyTorch user picks for
     speed: a StaticCache and the model's forward under torch.compile with
     mode="reduce-overhead", i.e. CUDA graphs, for the decode steps; the
     prefill eager on the static cache unless --compile-prefill), "eager"
     (only with --peers ...,eager); each validated first (a full forward of
     the prompt: every logit finite; the greedy loop's tokens equal
     model.generate's for sdpa), then TTFT (prefill + argmax to the host,
     synchronized, median of --repeats after --warmup) and decode tok/s
     ((128 - 1) / time from the first token to the last, median of
     --decode-repeats), the engine's definitions (src/engine/generate.h);
  5. agreement: every configuration's greedy tokens against the reference
     engine's (taste's ids), and the engine's against transformers'.

Prints a markdown table (rows: the engine configurations, the transformers
peers, the physical floors; columns: TTFT and decode tok/s at 512 and 2048
tokens), the breakdowns, issue 13's must/goal verdicts, and writes
OUT/engine_cuda.md and OUT/engine_cuda.json after every stage (a run cut
short by the call's limit keeps what it measured).  Exits 0 when every
validation passed, 3 when one failed (the table is still written, the
failure named), 1/2 on errors.

usage (repository root, GPU host):
  python3 bench/engine_cuda.py [--out DIR] [--workdir DIR] [--emile build/emile]
      [--configs reference,attention,...,all] [--kernel-dir build/op-kernels]
      [--prompts 512,2048] [--max-new 128] [--repeats 5] [--warmup 2]
      [--decode-repeats 2] [--engine-repeats 1] [--seed 4242]
      [--peers sdpa,compiled] [--compile-prefill]
      [--devices-json OUT/devices.json] [--skip-transformers] [--skip-engine]
  python3 bench/engine_cuda.py --table-from OUT/engine_cuda.json   # no torch needed

Floors: FLOPs of a prefill = 2 x (non-embedding parameters) x S + the
lm_head row of the last position + causal attention 2 x L x Hq x S^2 x D;
bytes of a decode step = every weight once in bf16.  Issue 7 quotes about
21 ms at 2048 tokens and 368 tok/s (8 GB at 2.96 TB/s) for the H100's
measured ceilings; the 512-token floor of that row is the 2048 one scaled by
the FLOP model.  With --devices-json (`emile devices --json`), a second floor
row uses this device's measured ceilings (bf16 cuBLAS GEMM, copy bandwidth).
"""
import argparse
import datetime
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# ---- the Qwen3-4B shape and issue 7's numbers --------------------------------
SHAPE = dict(layers=36, hidden=2560, q_heads=32, kv_heads=8, head_dim=128,
             intermediate=9728, vocab=151936)
ISSUE_FLOOR_TTFT_2048_MS = 21.0
ISSUE_FLOOR_DECODE_TOK_S = 368.0
# issue 13's goals (H100, Qwen3-4B shape, 128 new tokens)
MUST_DECODE_TOK_S = 250.0
GOAL_DECODE_TOK_S = 300.0
GOAL_TTFT_MS = {512: 7.0, 2048: 26.0}

# The engine's op slots (src/engine/op_slot.h), in the order a step runs them.
OPS = ["attention", "decode_attention", "qkv_proj", "o_proj", "gate_up", "down_proj", "lm_head"]
PEERS = [("transformers_sdpa", "transformers sdpa (dynamic cache, eager)"),
         ("transformers_compiled", "transformers static cache + torch.compile"),
         ("transformers_eager", "transformers eager attention")]


def params_nonembed(s=SHAPE):
    h, d = s["hidden"], s["head_dim"]
    q, kv = s["q_heads"] * d, s["kv_heads"] * d
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * s["intermediate"] + 2 * h + 2 * d
    return s["layers"] * per_layer + h


def prefill_flops(S, s=SHAPE):
    attn = 2.0 * s["layers"] * s["q_heads"] * S * S * s["head_dim"]   # causal: QK^T + PV, half
    return 2.0 * params_nonembed(s) * S + 2.0 * s["hidden"] * s["vocab"] + attn


def decode_bytes(s=SHAPE):
    return 2.0 * (params_nonembed(s) + s["hidden"] * s["vocab"])       # bf16, tied: once


def floors(prompts, bf16_tflops=None, bandwidth_gbs=None):
    """{S: ttft_ms}, decode tok/s: the issue's (ceilings None) or a device's."""
    if bf16_tflops is None:
        ttft = {S: ISSUE_FLOOR_TTFT_2048_MS * prefill_flops(S) / prefill_flops(2048)
                for S in prompts}
        return ttft, ISSUE_FLOOR_DECODE_TOK_S
    ttft = {S: prefill_flops(S) / (bf16_tflops * 1e12) * 1e3 for S in prompts}
    return ttft, bandwidth_gbs * 1e9 / decode_bytes()


def device_ceilings(path):
    """(name, bf16 TFLOP/s, GB/s) of the first measured cuda device in an
    `emile devices --json` file, or None."""
    try:
        j = json.load(open(path))
    except (OSError, ValueError):
        return None
    for d in j.get("devices", []):
        c = d.get("ceilings") or {}
        if d.get("backend") == "cuda" and c.get("peak_gflops", {}).get("bf16") and \
                c.get("bandwidth_gbs"):
            return (d.get("name") or c.get("device") or "cuda",
                    c["peak_gflops"]["bf16"] / 1e3, c["bandwidth_gbs"])
    return None


# ---- prompts ------------------------------------------------------------------
def prompt_ids(n, seed, vocab=SHAPE["vocab"]):
    """n fixed pseudo-random ids in [0, vocab), the same on every machine."""
    r = random.Random(seed * 1000003 + n)
    return [r.randrange(vocab) for _ in range(n)]


def write_ids(path, ids):
    with open(path, "w") as f:
        for i in range(0, len(ids), 16):
            f.write(" ".join(str(x) for x in ids[i:i + 16]) + "\n")


def read_ids(path):
    return [int(x) for x in open(path).read().split()]


# ---- kernels ------------------------------------------------------------------
def ladder_top(op, repo=REPO):
    """The file of op's ladder's top rung (kernels/<op>/cuda/ladder.json)."""
    d = os.path.join(repo, "kernels", op, "cuda")
    lad = json.load(open(os.path.join(d, "ladder.json")))
    top = max(lad["rungs"], key=lambda r: r["rung"])
    return os.path.normpath(os.path.join(d, top["file"]))


def best_op_kernel(op, repo=REPO):
    """The cooked kernel of op: examples/best_kernels/<op>.{so,cu} when a
    cook's export put one there, else the ladder's top rung at its defaults
    (the attention: best_kernel())."""
    if op == "attention":
        return best_kernel(repo)
    for ext in (".so", ".cu"):
        f = os.path.join(repo, "examples", "best_kernels", op + ext)
        if os.path.isfile(f):
            return f
    return ladder_top(op, repo)


def best_kernel(repo=REPO):
    """The file of the ladder's top rung (kernels/attention/cuda/ladder.json);
    examples/best_kernels/ holds the agent's choices as that template plus
    -D parameters, and its B=1 winners at 1x1024 and 1x16384 are the
    defaults.  A kernel file dropped into examples/best_kernels/ wins."""
    eb = os.path.join(repo, "examples", "best_kernels")
    if os.path.isdir(eb):
        files = sorted(f for f in os.listdir(eb) if f.endswith((".cu", ".so")) and
                       os.path.splitext(f)[0] not in OPS[1:])
        if files:
            return os.path.join(eb, files[0])
    lad = json.load(open(os.path.join(repo, "kernels", "attention", "cuda", "ladder.json")))
    top = max(lad["rungs"], key=lambda r: r["rung"])
    return os.path.join(repo, "kernels", "attention", "cuda", top["file"])


NVCC_FLAGS = ["-O3", "-arch=sm_90a", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
              "-cudart", "shared"]


def so_name(src, outdir, flags=""):
    """Where build_so puts src built with flags: outdir/attn_NAME[__FLAGS].so
    for attention kernels, outdir/FAMILY_NAME.so for the decode ops' (the
    names bench/op_ladders_cuda.py gives them: gemv_rung2_vec,
    decode_attention_rung2_gqa, qkv_proj_reference)."""
    tag = "".join(c if c.isalnum() else "_" for c in flags).strip("_")
    base = os.path.basename(src).rsplit(".", 1)[0]
    parent = os.path.dirname(os.path.abspath(src))
    family = os.path.basename(os.path.dirname(parent))
    if os.path.basename(parent) == "best_kernels":
        prefix = "best_"
    elif family in ["gemv"] + OPS[1:]:
        prefix = family + "_"
    else:
        prefix = "attn_"
    return os.path.join(outdir, prefix + base + ("__" + tag if tag else "") + ".so")


def build_so(src, outdir, flags="", rebuild=False):
    """A .cu built into outdir with the harness's nvcc line, unless already
    there (bench/gpu_session.sh engine-build makes the same files); a .so or
    .c is returned as is (taste takes those).  Returns the path."""
    if not src.endswith(".cu"):
        return src
    so = so_name(src, outdir, flags)
    nvcc = os.environ.get("NVCC", "nvcc")
    cmd = [nvcc] + NVCC_FLAGS + ["-I" + os.path.join(REPO, "include")] + shlex.split(flags) + \
        [src, "-o", so]
    if rebuild or not os.path.exists(so):
        os.makedirs(outdir, exist_ok=True)
        print("build:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    else:
        print(f"kernel: {so} (already built from {os.path.relpath(src, REPO)})", flush=True)
    return so


# ---- emile taste ----------------------------------------------------------------
def config_menus(names, kernels):
    """[(key, label, {op: kernel path})] for the configuration names
    ("reference", an op, "all"), kernels {op: path}."""
    out = []
    for n in names:
        if n == "reference":
            out.append(("engine_reference", "engine, its own ops", {}))
        elif n == "all":
            out.append(("engine_all", "engine, every op cooked", dict(kernels)))
        elif n in OPS:
            out.append((f"engine_{n}", f"engine + {n}", {n: kernels[n]}))
        else:
            raise ValueError(f"unknown configuration {n} (reference, {', '.join(OPS)}, all)")
    return out


def taste_cmd(emile, workdir, menu, ids_path, max_new, extra="", warmup=None, breakdown=False):
    """One side: the engine with menu's kernels in their slots.  No stop
    token (-1): max_new tokens whatever the random model picks."""
    cmd = [emile, "taste", "--device", "cuda", "--model", workdir]
    for op in OPS:
        if op in menu:
            cmd += ["--reference", f"{op}={menu[op]}"]
    cmd += ["--prompt-ids", ids_path, "--max-new", str(max_new), "--json", "--quiet",
            "--stop", "-1"]
    if warmup is not None:
        cmd += ["--warmup", str(warmup)]
    if breakdown:
        cmd.append("--breakdown")
    return cmd + shlex.split(extra)


def parse_taste(text):
    """The JSON object `emile taste --json` prints (the last line that is
    one, so build chatter before it does not matter)."""
    try:
        j = json.loads(text)
        if isinstance(j, dict):
            return j
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON object in emile taste's output")


def first_divergence(a, b):
    """First index where a and b differ (a length difference counts), -1 if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return -1 if len(a) == len(b) else min(len(a), len(b))


def config_row(tastes, max_new):
    """One configuration's row at one prompt length from its taste objects:
    {ttft_ms: [...], decode_tok_s: [...], tokens, ops, decode_path,
    breakdown}, and a list of problems (no run, too few tokens, greedy
    tokens changing between processes)."""
    row = {"ttft_ms": [], "decode_tok_s": [], "tokens": None, "ops": None,
           "decode_path": None, "breakdown": None}
    problems = []
    for j in tastes:
        runs = j.get("runs") or []
        if not runs:
            problems.append("taste output without a run")
            continue
        r = runs[0]
        row["ttft_ms"].append(float(r["ttft_ms"]))
        row["decode_tok_s"].append(float(r["decode_tok_s"]))
        row["ops"] = r.get("ops", row["ops"])
        if r.get("breakdown"):
            row["breakdown"] = r["breakdown"]
        ids = r.get("ids")
        n = len(ids) if isinstance(ids, list) else int(r.get("tokens", -1))
        if n != max_new:
            problems.append(f"generated {n} tokens, not {max_new}")
        if isinstance(ids, list):
            if row["tokens"] is not None and ids != row["tokens"]:
                problems.append(f"the greedy tokens differ between taste processes (first at "
                                f"{first_divergence(row['tokens'], ids)})")
            row["tokens"] = row["tokens"] or ids
        path = j.get("decode_path")
        if path:
            row["decode_path"] = path + (f" ({j['decode_path_note']})"
                                         if j.get("decode_path_note") else "")
    return row, problems


def run_engine(a, workdir, configs, prompts):
    """Every configuration's taste processes: {key: {S: row}}, problems,
    warnings (a configuration whose tokens differ from the reference's:
    with random weights a bf16 rounding difference can flip a near-tied
    greedy pick, so this is reported; tests/gpu/engine_cuda_check.c checks
    the logits)."""
    out, problems, warnings = {}, [], []
    breakdown = set(a.breakdown.split(",")) if a.breakdown else set()
    for key, label, menu in configs:
        out[key] = {}
        for S, path in prompts.items():
            tastes = []
            bd = key.replace("engine_", "") in breakdown
            for rep in range(a.engine_repeats):
                cmd = taste_cmd(a.emile, workdir, menu, path, a.max_new, a.taste_args, a.warmup,
                                bd and rep == 0)
                print(("$ " if rep == 0 else "  again: ") + " ".join(shlex.quote(c) for c in cmd),
                      flush=True)
                t0 = time.time()
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
                    problems.append(f"{label} S={S}: emile taste exited {p.returncode}: "
                                    f"{p.stderr.strip()[-300:]}")
                    break
                try:
                    j = parse_taste(p.stdout)
                except ValueError as e:
                    problems.append(f"{label} S={S}: {e}")
                    break
                j["wall_s"] = round(time.time() - t0, 2)
                tastes.append(j)
                r = (j.get("runs") or [{}])[0]
                print(f"  {label} S={S}: TTFT {r.get('ttft_ms', 0):.2f} ms, decode "
                      f"{r.get('decode_tok_s', 0):.1f} tok/s, {j.get('decode_path')} "
                      f"({j['wall_s']} s)", flush=True)
            row, probs = config_row(tastes, a.max_new)
            problems += [f"{label} S={S}: {p}" for p in probs]
            out[key][str(S)] = row
        yield key, out[key], problems, warnings
    return


def agreement(rows, prompts):
    """{S: {key: first divergence from the reference engine's tokens}}."""
    ag = {}
    for S in prompts:
        ref = rows.get("engine_reference", {}).get(str(S), {}).get("tokens")
        if ref is None:
            continue
        for key, r in rows.items():
            t = r.get(str(S), {}).get("tokens")
            if key != "engine_reference" and t is not None:
                ag.setdefault(str(S), {})[key] = first_divergence(ref, t)
    return ag


# ---- transformers -------------------------------------------------------------------
def bench_transformers(workdir, impl, prompts, a):
    """{S: {ttft_ms: [...], decode_tok_s: [...], tokens: [...], finite, ...}},
    problems (non-finite logits), warnings (greedy tokens changing between
    repeats, the timed loop's tokens differing from model.generate's)."""
    import inspect
    import torch
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import golden_qwen3
    model = golden_qwen3.load_cuda(workdir, torch.bfloat16, impl)
    keep_kw = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        keep_kw = {"logits_to_keep": 1}          # what generate() asks for

    def sync():
        torch.cuda.synchronize()

    def prefill(x):
        sync()
        t0 = time.perf_counter()
        o = model(input_ids=x, use_cache=True, **keep_kw)
        tok = o.logits[:, -1].argmax(-1, keepdim=True)
        first = tok.item()
        return time.perf_counter() - t0, o.past_key_values, tok, first

    def greedy(x, n):
        dt, past, tok, first = prefill(x)
        toks = [first]
        t1 = time.perf_counter()
        while len(toks) < n:
            o = model(input_ids=tok, past_key_values=past, use_cache=True, **keep_kw)
            past = o.past_key_values
            tok = o.logits[:, -1].argmax(-1, keepdim=True)
            toks.append(tok.item())
        t2 = time.perf_counter()
        return dt, (n - 1) / (t2 - t1) if n > 1 else 0.0, toks

    res, problems, warnings = {}, [], []
    with torch.inference_mode():
        for S, ids in prompts.items():
            x = torch.tensor([ids], device="cuda")
            r = {"impl": impl}
            lg = model(input_ids=x, use_cache=False).logits
            r["finite"] = bool(torch.isfinite(lg).all().item())
            r["logit_std_last"] = float(lg[0, -1].float().std().item())
            del lg
            if not r["finite"]:
                problems.append(f"transformers {impl} S={S}: non-finite logits")
                res[S] = r
                continue
            for _ in range(a.warmup):
                prefill(x)
            greedy(x, min(8, a.max_new))                       # decode warm-up
            r["ttft_ms"] = [prefill(x)[0] * 1e3 for _ in range(a.repeats)]
            r["decode_tok_s"], r["ttft_in_decode_runs_ms"] = [], []
            for _ in range(a.decode_repeats):
                dt, tps, toks = greedy(x, a.max_new)
                r["decode_tok_s"].append(tps)
                r["ttft_in_decode_runs_ms"].append(dt * 1e3)
                if "tokens" in r and toks != r["tokens"]:
                    warnings.append(f"transformers {impl} S={S}: greedy tokens differ between "
                                    f"repeats (first at {first_divergence(r['tokens'], toks)})")
                r.setdefault("tokens", toks)
            if a.generate_check:
                g = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                                   max_new_tokens=a.max_new, min_new_tokens=a.max_new)
                gt = g[0, x.shape[1]:].tolist()
                r["generate_first_divergence"] = first_divergence(r["tokens"], gt)
                if gt != r["tokens"]:
                    warnings.append(f"transformers {impl} S={S}: the timed greedy loop's tokens "
                                    f"differ from model.generate's at "
                                    f"{r['generate_first_divergence']}")
            print(f"transformers {impl:5s} S={S}: TTFT {statistics.median(r['ttft_ms']):.2f} ms "
                  f"(of {[round(t, 2) for t in r['ttft_ms']]}), decode "
                  f"{statistics.median(r['decode_tok_s']):.2f} tok/s", flush=True)
            res[S] = r
    del model
    torch.cuda.empty_cache()
    return res, problems, warnings


def bench_transformers_compiled(workdir, prompts, a):
    """The gpt-fast recipe in transformers: a StaticCache sized for the
    longest prompt plus the new tokens, the model's forward under
    torch.compile(mode="reduce-overhead", fullgraph=True) -- CUDA graphs --
    for the one-token decode steps, the prefill eager on the static cache
    (compiled too with --compile-prefill: one compile per prompt length).
    {S: {ttft_ms, decode_tok_s, tokens, compile_s}}, problems, warnings."""
    import torch
    from transformers import StaticCache
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import golden_qwen3
    model = golden_qwen3.load_cuda(workdir, torch.bfloat16, "sdpa")
    max_len = max(len(ids) for ids in prompts.values()) + a.max_new + 8
    cache = StaticCache(config=model.config, max_cache_len=max_len)
    step = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    pre = step if a.compile_prefill else model.forward

    def sync():
        torch.cuda.synchronize()

    def call(f, ids, pos0):
        if f is step:
            torch.compiler.cudagraph_mark_step_begin()
        pos = torch.arange(pos0, pos0 + ids.shape[1], device="cuda")
        return f(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True,
                 logits_to_keep=1).logits[:, -1]

    def prefill(x):
        cache.reset()
        sync()
        t0 = time.perf_counter()
        tok = call(pre, x, 0).argmax(-1, keepdim=True)
        first = tok.item()
        return time.perf_counter() - t0, tok, first

    def greedy(x, n):
        dt, tok, first = prefill(x)
        toks = [first]
        t1 = time.perf_counter()
        while len(toks) < n:
            tok = call(step, tok.clone(), x.shape[1] + len(toks) - 1).argmax(-1, keepdim=True)
            toks.append(tok.item())
        t2 = time.perf_counter()
        return dt, (n - 1) / (t2 - t1) if n > 1 else 0.0, toks

    res, problems, warnings = {}, [], []
    with torch.inference_mode():
        for S, ids in prompts.items():
            x = torch.tensor([ids], device="cuda")
            r = {"impl": "compiled"}
            t0 = time.time()
            for _ in range(max(1, a.warmup)):
                greedy(x, min(8, a.max_new))              # compiles (once per shape)
            r["compile_s"] = round(time.time() - t0, 1)
            r["ttft_ms"] = [prefill(x)[0] * 1e3 for _ in range(a.repeats)]
            r["decode_tok_s"] = []
            for _ in range(a.decode_repeats):
                dt, tps, toks = greedy(x, a.max_new)
                r["decode_tok_s"].append(tps)
                if "tokens" in r and toks != r["tokens"]:
                    warnings.append(f"transformers compiled S={S}: greedy tokens differ between "
                                    f"repeats (first at {first_divergence(r['tokens'], toks)})")
                r.setdefault("tokens", toks)
            print(f"transformers compiled S={S}: TTFT {statistics.median(r['ttft_ms']):.2f} ms, "
                  f"decode {statistics.median(r['decode_tok_s']):.2f} tok/s (compile and "
                  f"warm-up {r['compile_s']} s)", flush=True)
            res[S] = r
    del model, cache, step
    torch.cuda.empty_cache()
    return res, problems, warnings


# ---- the table ------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def row_order(res):
    keys = [k for k in res.get("configs", [])]
    return [(k, res["labels"].get(k, k)) for k in keys] + \
        [(k, l) for k, l in PEERS if res["rows"].get(k)]


def format_table(res):
    """Markdown from a result object (engine_cuda.json): the table, the
    kernels of each configuration, agreement, breakdowns, verdicts."""
    prompts = [int(s) for s in res["prompts"]]
    rows = res["rows"]
    lines = [f"Qwen3-4B shape, random bf16 weights (seed {res.get('seed')}), greedy, "
             f"{res['max_new']} new tokens. **Device:** {res.get('device', '?')}. "
             f"**Date:** {res.get('date', '?')}.", ""]
    head = ["run", *[f"TTFT {S} (ms)" for S in prompts],
            *[f"decode tok/s {S}" for S in prompts]]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for key, label in row_order(res):
        r = rows.get(key, {})
        cells = [fmt(med(r.get(str(S), {}).get("ttft_ms", [])), 2) for S in prompts] + \
                [fmt(med(r.get(str(S), {}).get("decode_tok_s", [])), 1) for S in prompts]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for fl in res.get("floors", []):
        cells = [fmt(fl["ttft_ms"].get(str(S)), 1) for S in prompts] + \
                [fmt(fl["decode_tok_s"], 0) for _ in prompts]
        lines.append(f"| {fl['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Medians of {res.get('repeats_note', 'the repeats')}. Decode: (tokens - 1) / "
                 f"time from the first token to the last. transformers: see the notes.")
    kern = res.get("kernels") or {}
    if kern:
        lines.append("")
        lines.append("Cooked kernels: " + "; ".join(
            f"{op} `{os.path.basename(str(k))}`" for op, k in kern.items()) + ".")
    agree = res.get("agreement") or agreement(rows, prompts)
    for S in prompts:
        ag = agree.get(str(S), {})
        if ag:
            bits = [f"{res['labels'].get(k, k)}: " +
                    ("same tokens" if v == -1 else f"first divergence at token {v}")
                    for k, v in ag.items()]
            lines.append(f"- {S} tokens, against the reference engine's tokens: " + "; ".join(bits))
    for key, label in row_order(res):
        for S in prompts:
            bd = rows.get(key, {}).get(str(S), {}).get("breakdown")
            if bd and bd.get("decode"):
                lines += ["", f"Breakdown, {label}, {S}-token prompt (ms; share of the step; "
                              f"floor and the op's share of it):", "",
                          "| phase | op | ms | share | floor ms | of floor |",
                          "|---|---|---:|---:|---:|---:|"]
                for ph in ("prefill", "decode"):
                    for op, o in (bd.get(ph, {}).get("ops") or {}).items():
                        lines.append(f"| {ph} | {op} | {o['ms']:.4f} | {100 * o['share']:.1f}% | "
                                     f"{fmt(o.get('floor_ms'), 4)} | "
                                     f"{fmt(100 * o['of_floor'] if 'of_floor' in o else None, 1)}"
                                     f"{'%' if 'of_floor' in o else ''} |")
    v = verdicts(res)
    if v:
        lines.append("")
        lines += [f"- {x}" for x in v]
    for n in res.get("notes", []):
        lines.append(f"- note: {n}")
    paths = sorted({r.get("decode_path") for k in res.get("configs", [])
                    for r in rows.get(k, {}).values() if r.get("decode_path")})
    if paths:
        lines.append("")
        lines.append("Engine decode path: " + "; ".join(paths) + ".")
    val = res.get("validation", {})
    for key, title in (("problems", "Validation problems (the figures above are suspect)"),
                       ("warnings", "Warnings")):
        if val.get(key):
            lines.append("")
            lines.append(f"**{title}:**")
            lines += [f"- {p}" for p in val[key]]
    if val.get("ok") and not val.get("problems"):
        lines.append("")
        lines.append("Validation: passed (every transformers logit finite, every engine run "
                     "complete).")
    return "\n".join(lines) + "\n"


def verdicts(res):
    """Issue 13's must/goal lines, from the medians of the every-op row."""
    rows, out = res["rows"], []
    prompts = [int(x) for x in res["prompts"]]
    best = rows.get("engine_all") or {}
    comp = rows.get("transformers_compiled") or {}
    for S in prompts:
        d = med(best.get(str(S), {}).get("decode_tok_s", []))
        if d is not None:
            out.append(f"must: decode with every op cooked at least {MUST_DECODE_TOK_S:.0f} tok/s "
                       f"at {S}: {'yes' if d >= MUST_DECODE_TOK_S else 'NO'} ({d:.1f}); goal "
                       f"{GOAL_DECODE_TOK_S:.0f}: {'yes' if d >= GOAL_DECODE_TOK_S else 'no'}")
    for S in prompts:
        t = med(best.get(str(S), {}).get("ttft_ms", []))
        if t is not None and S in GOAL_TTFT_MS:
            out.append(f"goal: TTFT at {S} tokens at most {GOAL_TTFT_MS[S]:.0f} ms: "
                       f"{'yes' if t <= GOAL_TTFT_MS[S] else 'no'} ({t:.2f} ms)")
    for S in prompts:
        for f, better, unit in (("ttft_ms", min, "ms"), ("decode_tok_s", max, "tok/s")):
            e, c = med(best.get(str(S), {}).get(f, [])), med(comp.get(str(S), {}).get(f, []))
            if e is not None and c is not None:
                ahead = better(e, c) == e and e != c
                out.append(f"goal: ahead of transformers compiled on {f.split('_')[0]} at {S}: "
                           f"{'yes' if ahead else 'no'} ({e:.2f} vs {c:.2f} {unit})")
    ag = res.get("agreement") or agreement(rows, prompts)
    for S in prompts:
        v = ag.get(str(S), {}).get("engine_all")
        if v is not None:
            out.append(f"same tokens as the reference engine with every op swapped at {S}: "
                       f"{'yes' if v == -1 else f'no (first divergence at token {v})'}")
    return out


# ---- main -------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--workdir", default=os.path.join(REPO, "build", "engine-4b", "qwen3-4b"),
                    help="checkpoint directory (created if absent; ~8 GB; keep it out of $OUT)")
    ap.add_argument("--emile", default=os.path.join(REPO, "build", "emile"))
    ap.add_argument("--configs", default="reference,all," + ",".join(OPS),
                    help="engine configurations, in this order: reference, all, an op (alone)")
    ap.add_argument("--kernel", action="append", default=[], metavar="OP=PATH",
                    help="the cooked kernel of an op (default: best_op_kernel)")
    ap.add_argument("--kernel-dir", default=os.path.join(REPO, "build", "op-kernels"),
                    help="where .cu kernels are built (or found prebuilt)")
    ap.add_argument("--rebuild-kernels", action="store_true")
    ap.add_argument("--breakdown", default="reference,all",
                    help="configurations that also run taste --breakdown ('' for none)")
    ap.add_argument("--prompts", default="512,2048")
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--seed", type=int, default=4242, help="seed of the random weights")
    ap.add_argument("--prompt-seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=5, help="timed transformers prefills")
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed prefills first, for transformers and for each taste side")
    ap.add_argument("--decode-repeats", type=int, default=2)
    ap.add_argument("--engine-repeats", type=int, default=1, help="taste processes per row")
    ap.add_argument("--peers", default="compiled,sdpa",
                    help="transformers peers: compiled, sdpa, eager (in this order of need)")
    ap.add_argument("--compile-prefill", action="store_true",
                    help="compiled peer: compile the prefill too (one compile per length)")
    ap.add_argument("--no-generate-check", dest="generate_check", action="store_false")
    ap.add_argument("--taste-args", default="", help="extra arguments for emile taste")
    ap.add_argument("--devices-json", help="`emile devices --json` output: floors at this "
                                           "device's measured ceilings too")
    ap.add_argument("--deadline-s", type=float, default=0,
                    help="skip the stages that would start after this many seconds (0: none)")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--table-from", metavar="JSON",
                    help="only print the table of an earlier result (no GPU, no torch)")
    a = ap.parse_args()

    if a.table_from:
        sys.stdout.write(format_table(json.load(open(a.table_from))))
        return 0

    import torch
    import transformers
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import golden_qwen3
    if not torch.cuda.is_available():
        sys.exit("engine_cuda.py needs a GPU")
    os.makedirs(a.out, exist_ok=True)
    workdir = os.path.abspath(a.workdir)
    Ss = [int(s) for s in a.prompts.split(",")]
    kernels = {op: best_op_kernel(op) for op in OPS}
    for kv in a.kernel:
        op, _, path = kv.partition("=")
        if op not in OPS or not path:
            sys.exit(f"--kernel {kv}: OP=PATH with OP one of {', '.join(OPS)}")
        kernels[op] = os.path.abspath(path)
    configs = config_menus([c for c in a.configs.split(",") if c], kernels)
    dev = torch.cuda.get_device_name()
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "device": dev, "torch": torch.__version__, "transformers": transformers.__version__,
           "shape": "qwen3-4b", "seed": a.seed, "prompt_seed": a.prompt_seed,
           "max_new": a.max_new, "prompts": Ss, "workdir": workdir,
           "configs": [k for k, _, _ in configs], "labels": {k: l for k, l, _ in configs},
           "kernels": {op: os.path.relpath(k, REPO) for op, k in kernels.items()},
           "repeats_note": f"{a.engine_repeats} taste process(es) per engine row, each after "
                           f"{a.warmup} warm-up prefills; {a.repeats} transformers prefills after "
                           f"{a.warmup} warm-ups, {a.decode_repeats} decode runs",
           "notes": ["transformers sdpa: the default dynamic KV cache, eager PyTorch; "
                     "transformers compiled: StaticCache + torch.compile(mode='reduce-overhead',"
                     " fullgraph=True) for the decode steps (CUDA graphs), prefill " +
                     ("compiled" if a.compile_prefill else "eager on the static cache")],
           "rows": {}, "agreement": {}, "floors": []}
    try:
        res["commit"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    problems, warnings = [], []
    ttft, dec = floors(Ss)
    res["floors"].append({"label": "physical floor (issue 7: H100 measured ceilings)",
                          "ttft_ms": {str(S): v for S, v in ttft.items()},
                          "decode_tok_s": dec})
    if a.devices_json:
        c = device_ceilings(a.devices_json)
        if c:
            ttft, dec = floors(Ss, c[1], c[2])
            res["floors"].append({"label": f"physical floor ({c[0]}: {c[1]:.0f} TFLOP/s bf16, "
                                           f"{c[2] / 1e3:.2f} TB/s measured)",
                                  "ttft_ms": {str(S): v for S, v in ttft.items()},
                                  "decode_tok_s": dec})

    def save(final):
        """engine_cuda.json and .md, after every stage."""
        res["agreement"] = agreement(res["rows"], Ss)
        for S, ag in res["agreement"].items():
            for k, v in ag.items():
                msg = (f"{res['labels'].get(k, k)} S={S}: the greedy tokens differ from the "
                       f"reference engine's (first divergence at {v})")
                if v != -1 and msg not in warnings:
                    warnings.append(msg)
        res["validation"] = {"ok": not problems, "problems": problems, "warnings": warnings,
                             "complete": final}
        table = format_table(res)
        json.dump(res, open(os.path.join(a.out, "engine_cuda.json"), "w"), indent=1)
        open(os.path.join(a.out, "engine_cuda.md"), "w").write(table)
        return table

    t_start = time.time()

    def stage(name, fn):
        """Run one stage; an exception is a named problem, not the end."""
        if a.deadline_s and time.time() - t_start > a.deadline_s:
            res.setdefault("notes", []).append(f"{name}: skipped (past --deadline-s "
                                               f"{a.deadline_s:.0f})")
            save(False)
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 -- reported, and the other stages still run
            import traceback
            traceback.print_exc()
            problems.append(f"{name} failed: {type(e).__name__}: {e}")
        save(False)

    golden_qwen3.make_checkpoint_4b(workdir, a.seed)
    prompts, ids = {}, {}
    for S in Ss:
        ids[S] = prompt_ids(S, a.prompt_seed)
        prompts[S] = os.path.join(workdir, f"prompt_{S}.txt")
        write_ids(prompts[S], ids[S])

    built = {}

    def engine(keys):
        """The configurations keys, one after another (the deadline checked
        between them)."""
        chosen = [c for c in configs if c[0] in keys]
        for op in sorted({op for _, _, m in chosen for op in m}):
            if op not in built:
                built[op] = build_so(kernels[op], a.kernel_dir, "", a.rebuild_kernels)
        menus = [(k, l, {op: built[op] for op in m}) for k, l, m in chosen]
        for key, rows, p, w in run_engine(a, workdir, menus, prompts):
            res["rows"][key] = rows
            problems[:] = list(dict.fromkeys(problems + p))
            warnings[:] = list(dict.fromkeys(warnings + w))
            save(False)
            if a.deadline_s and time.time() - t_start > a.deadline_s:
                res.setdefault("notes", []).append(
                    f"engine configurations after {res['labels'][key]}: skipped (past "
                    f"--deadline-s {a.deadline_s:.0f})")
                break

    def peer(impl):
        if impl == "compiled":
            r, p, w = bench_transformers_compiled(workdir, ids, a)
        else:
            r, p, w = bench_transformers(workdir, impl, ids, a)
        problems.extend(p)
        warnings.extend(w)
        res["rows"][f"transformers_{impl}"] = {str(S): v for S, v in r.items()}

    # the comparison that matters first (the reference engine, every op
    # cooked, the peers), then each op alone
    core = [k for k, _, _ in configs if k in ("engine_reference", "engine_all")]
    singles = [k for k, _, _ in configs if k not in core]
    if not a.skip_engine and core:
        stage("engine", lambda: engine(core))
    if not a.skip_transformers:
        for impl in [p for p in a.peers.split(",") if p]:
            stage(f"transformers {impl}", lambda impl=impl: peer(impl))
    if not a.skip_engine and singles:
        stage("engine, each op alone", lambda: engine(singles))

    # the engine against transformers, greedy tokens
    for S in Ss:
        et = res["rows"].get("engine_reference", {}).get(str(S), {}).get("tokens")
        for k, _ in PEERS:
            tt = res["rows"].get(k, {}).get(str(S), {}).get("tokens")
            if et is not None and tt is not None:
                res.setdefault("engine_vs_transformers", {}).setdefault(str(S), {})[k] = \
                    first_divergence(et, tt)
    table = save(True)
    sys.stdout.write("\n" + table)
    print(f"wrote {a.out}/engine_cuda.json and engine_cuda.md")
    return 0 if not problems else 3


if __name__ == "__main__":
    sys.exit(main())
