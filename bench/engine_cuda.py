#!/usr/bin/env python3
"""engine_cuda.py -- the Tasting Room engine against transformers, end to end
(issue 7's performance table), on the GPU host.

One process, one device, the same weights and prompts for everyone:

  1. the Qwen3-4B shape (36 layers, hidden 2560, 32 query / 8 KV heads, head
     dim 128, per-head q/k RMSNorm, RoPE theta 1e6, SwiGLU 9728, tied
     embeddings, vocab 151936) with random bf16 weights drawn on the GPU from
     a fixed seed by scripts/golden_qwen3.py (make_checkpoint_4b: the scheme
     of the golden tiny models, norms 1+0.2 N, embeddings N(0,1), matrices
     N(0,1)/sqrt(fan_in)), saved by transformers as safetensors into
     --workdir (about 8 GB; reused when it holds the same draw);
  2. prompts of 512 and 2048 fixed pseudo-random token ids (Python's random
     with --prompt-seed), written to WORKDIR/prompt_S.txt for --prompt-ids;
  3. transformers (Qwen3ForCausalLM.from_pretrained of that directory, bf16,
     attn_implementation "sdpa" and "eager"), greedy, 128 new tokens:
     validated first (a full forward of the prompt: every logit finite; the
     greedy loop's tokens equal model.generate's), then
       TTFT: prefill forward of the prompt (DynamicCache built, logits of the
             last position only) + argmax copied to the host, timed with
             torch.cuda.synchronize() around it, median of --repeats after
             --warmup untimed ones;
       decode tok/s: (128 - 1) / (time from the first token chosen to the
             last), token by token with transformers' default dynamic KV
             cache (DynamicCache), no torch.compile, each token copied to
             the host as generate() does, median of --decode-repeats;
     the same definitions as the engine's (src/engine/generate.h);
  4. the engine (run first; each stage's failure is named and the others
     still run; the JSON and table are rewritten after every stage): `emile taste --device cuda --model WORKDIR --reference REF
     --kernel BEST --prompt-ids F --max-new 128 --json --warmup W`,
     --engine-repeats processes per prompt (median of each figure; taste
     times one generation per side after W untimed prefills); REF defaults to
     kernels/attention/cuda/reference.cu and BEST to the top rung of
     kernels/attention/cuda/ladder.json (rung7_wgmma.cu with its defaults:
     examples/best_kernels/README.md, the agent's best for B=1); a .cu is
     built with the harness's nvcc line into --kernel-dir (build/engine-gpu,
     where `bash bench/gpu_session.sh engine-build` puts them) unless there;
  5. agreement: engine reference vs engine kernel (taste's agree /
     first_divergence), and, when taste's runs carry the generated ids
     ("tokens" as a list), engine vs transformers greedy tokens.

Prints a markdown table (rows: engine with the reference attention, engine
with the best kernel, transformers sdpa, transformers eager, the physical
floors; columns: TTFT and decode tok/s at 512 and 2048 tokens), issue 7's
must/goal verdicts, and writes OUT/engine_cuda.md and OUT/engine_cuda.json.
Exits 0 when every validation passed, 3 when a validation failed (the table
is still written, with the failure named), 1/2 on errors.

usage (repository root, GPU host):
  python3 bench/engine_cuda.py [--out DIR] [--workdir DIR] [--emile build/emile]
      [--kernel PATH] [--kernel-flags "-DEMILE_QBUF=1 ..."] [--reference PATH]
      [--prompts 512,2048] [--max-new 128] [--repeats 5] [--warmup 2]
      [--decode-repeats 2] [--engine-repeats 3] [--seed 4242]
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
MUST_DECODE_TOK_S = 150.0
GOAL_DECODE_TOK_S = 250.0
GOAL_TTFT_FLOOR_RATIO = 1.3

ROWS = [("engine_reference", "engine (reference attention)"),
        ("engine_kernel", "engine (best kernel)"),
        ("transformers_sdpa", "transformers sdpa"),
        ("transformers_eager", "transformers eager")]


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
def best_kernel(repo=REPO):
    """The file of the ladder's top rung (kernels/attention/cuda/ladder.json);
    examples/best_kernels/ holds the agent's choices as that template plus
    -D parameters, and its B=1 winners at 1x1024 and 1x16384 are the
    defaults.  A kernel file dropped into examples/best_kernels/ wins."""
    eb = os.path.join(repo, "examples", "best_kernels")
    if os.path.isdir(eb):
        files = sorted(f for f in os.listdir(eb) if f.endswith((".cu", ".so")))
        if files:
            return os.path.join(eb, files[0])
    lad = json.load(open(os.path.join(repo, "kernels", "attention", "cuda", "ladder.json")))
    top = max(lad["rungs"], key=lambda r: r["rung"])
    return os.path.join(repo, "kernels", "attention", "cuda", top["file"])


NVCC_FLAGS = ["-O3", "-arch=sm_90a", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
              "-cudart", "shared"]


def so_name(src, outdir, flags=""):
    """Where build_so puts src built with flags: outdir/attn_NAME[__FLAGS].so."""
    tag = "".join(c if c.isalnum() else "_" for c in flags).strip("_")
    base = os.path.basename(src).rsplit(".", 1)[0]
    return os.path.join(outdir, "attn_" + base + ("__" + tag if tag else "") + ".so")


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
def taste_cmd(emile, workdir, ref, kernel, ids_path, max_new, extra="", warmup=None):
    """No stop token (-1): 128 tokens whatever the random model picks; taste
    warms each side up with `warmup` untimed prefills (its default: 1)."""
    return [emile, "taste", "--device", "cuda", "--model", workdir, "--reference", ref,
            "--kernel", kernel, "--prompt-ids", ids_path, "--max-new", str(max_new),
            "--json", "--quiet", "--stop", "-1"] + \
        (["--warmup", str(warmup)] if warmup is not None else []) + shlex.split(extra)


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


def taste_run_of(j, role):
    for r in j.get("runs", []):
        if r.get("role") == role:
            return r
    return None


def token_list(run):
    """The generated ids when taste exposes them, else None (its "tokens"
    may be a count)."""
    if not run:
        return None
    for k in ("tokens", "token_ids", "ids", "generated"):
        v = run.get(k)
        if isinstance(v, list) and all(isinstance(x, int) for x in v):
            return v
    return None


def first_divergence(a, b):
    """First index where a and b differ (a length difference counts), -1 if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return -1 if len(a) == len(b) else min(len(a), len(b))


def engine_rows(tastes, max_new):
    """From the parsed taste objects of one prompt length: the two engine
    rows ({ttft_ms: [...], decode_tok_s: [...], tokens: ids or None,
    attention, n_tokens, decode_path}), the agreement, a list of validation
    problems (a run missing, too few tokens, greedy tokens that change from
    one process to the next) and a list of warnings (the kernel's tokens
    diverging from the reference attention's: with random weights a bf16
    rounding difference can flip a near-tied greedy choice, so this is
    reported; tests/gpu/engine_cuda_check.c --golden checks the logits)."""
    rows, problems, warnings = {}, [], []
    for role, key in (("reference", "engine_reference"), ("kernel", "engine_kernel")):
        ttft, dec, toks, att, counts = [], [], None, None, []
        for j in tastes:
            r = taste_run_of(j, role)
            if r is None:
                problems.append(f"taste output without a '{role}' run")
                continue
            ttft.append(float(r["ttft_ms"]))
            dec.append(float(r["decode_tok_s"]))
            att = r.get("attention", att)
            tl = token_list(r)
            counts.append(len(tl) if tl is not None else int(r.get("tokens", -1)))
            if tl is not None:
                if toks is not None and tl != toks:
                    problems.append(f"engine {role}: the greedy tokens differ between taste "
                                    f"processes (first at {first_divergence(toks, tl)})")
                toks = tl if toks is None else toks
        if counts and any(c != max_new for c in counts):
            problems.append(f"engine {role}: generated {counts} tokens, not {max_new}")
        paths = sorted({str(j["decode_path"]) + (f" ({j['decode_path_note']})"
                                                 if j.get("decode_path_note") else "")
                        for j in tastes if j.get("decode_path")})
        rows[key] = {"ttft_ms": ttft, "decode_tok_s": dec, "tokens": toks, "attention": att,
                     "n_tokens": counts, "decode_path": ", ".join(paths) or None}
    agree = [j.get("agree") for j in tastes if "agree" in j]
    div = [j.get("first_divergence") for j in tastes if "first_divergence" in j]
    if not agree:
        problems.append("taste reported no agreement (was the kernel run?)")
    elif not all(agree):
        warnings.append(f"engine: the kernel's greedy tokens differ from the reference "
                        f"attention's (first divergence {div})")
    return (rows, {"agree": all(agree) if agree else None, "first_divergence": div},
            problems, warnings)


def run_engine(a, workdir, ref_so, kern_so, prompts):
    """Every taste process; returns {S: {"raw": [...], "rows", "agreement"}},
    problems, warnings."""
    out, problems, warnings = {}, [], []
    for S, path in prompts.items():
        tastes = []
        for rep in range(a.engine_repeats):
            cmd = taste_cmd(a.emile, workdir, ref_so, kern_so, path, a.max_new, a.taste_args,
                            a.warmup)
            print(("$ " if rep == 0 else "  again: ") + " ".join(shlex.quote(c) for c in cmd),
                  flush=True)
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
                problems.append(f"emile taste (S={S}) exited {p.returncode}: "
                                f"{p.stderr.strip()[-300:]}")
                break
            try:
                j = parse_taste(p.stdout)
            except ValueError as e:
                sys.stderr.write(p.stdout[-4000:])
                problems.append(f"emile taste (S={S}): {e}")
                break
            j["wall_s"] = round(time.time() - t0, 2)
            tastes.append(j)
            print("  " + json.dumps({k: v for k, v in j.items() if k != "runs"}) + " " +
                  json.dumps([{k: (v if not isinstance(v, list) else f"[{len(v)} ids]")
                               for k, v in r.items()} for r in j.get("runs", [])]), flush=True)
        rows, agreement, probs, warns = engine_rows(tastes, a.max_new) if tastes else \
            ({}, {}, [], [])
        problems += [f"S={S}: {p}" for p in probs]
        warnings += [f"S={S}: {w}" for w in warns]
        out[S] = {"raw": tastes, "rows": rows, "agreement": agreement}
    return out, problems, warnings


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


# ---- the table ------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def format_table(res):
    """Markdown: the side-by-side table, agreement and issue 7's verdicts,
    from a result object (engine_cuda.json)."""
    prompts = [int(s) for s in res["prompts"]]
    rows = res["rows"]
    lines = [f"Qwen3-4B shape, random bf16 weights (seed {res.get('seed')}), greedy, "
             f"{res['max_new']} new tokens. **Device:** {res.get('device', '?')}. "
             f"**Date:** {res.get('date', '?')}.", ""]
    head = ["run", *[f"TTFT {S} (ms)" for S in prompts],
            *[f"decode tok/s {S}" for S in prompts]]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for key, label in ROWS:
        r = rows.get(key, {})
        cells = [fmt(med(r.get(str(S), {}).get("ttft_ms", [])), 2) for S in prompts] + \
                [fmt(med(r.get(str(S), {}).get("decode_tok_s", [])), 1) for S in prompts]
        att = None
        if key.startswith("engine"):
            src = res.get("reference" if key == "engine_reference" else "kernel") or {}
            att = next((os.path.basename(str(r[str(S)]["attention"])) for S in prompts
                        if str(S) in r and r[str(S)].get("attention")), None)
            if src.get("source"):
                att = os.path.basename(src["source"]) + \
                    (" " + src["flags"] if src.get("flags") else "")
        lines.append(f"| {label}" + (f" (`{att}`)" if att else "") + " | " +
                     " | ".join(cells) + " |")
    for fl in res.get("floors", []):
        cells = [fmt(fl["ttft_ms"].get(str(S)), 1) for S in prompts] + \
                [fmt(fl["decode_tok_s"], 0) for _ in prompts]
        lines.append(f"| {fl['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"TTFT: median of {res.get('repeats_note', 'the repeats')}. Decode: "
                 f"(tokens - 1) / time from the first token to the last. "
                 f"transformers: {res.get('transformers_cache', '?')}.")
    lines.append("")
    for S in prompts:
        ag = res.get("agreement", {}).get(str(S), {})
        bits = []
        e = ag.get("engine_reference_vs_kernel")
        if e:
            d = e.get("first_divergence")
            if isinstance(d, list) and d and all(x == d[0] for x in d):
                d = d[0]
            bits.append("engine reference vs best kernel: " +
                        ("same tokens" if e.get("agree") else
                         f"differ (first divergence at token {d})"))
        for k, v in sorted(ag.items()):
            if k != "engine_reference_vs_kernel":
                bits.append(f"{k.replace('_', ' ')}: " +
                            ("same tokens" if v == -1 else f"first divergence at token {v}"))
        if bits:
            lines.append(f"- {S} tokens: " + "; ".join(bits))
    v = verdicts(res)
    if v:
        lines.append("")
        lines += [f"- {x}" for x in v]
    for n in res.get("notes", []):
        lines.append(f"- note: {n}")
    paths = sorted({r.get("decode_path") for k, _ in ROWS if k.startswith("engine")
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
    """Issue 7's must/goal lines, from the medians."""
    rows, out = res["rows"], []
    k, s = rows.get("engine_kernel", {}), rows.get("transformers_sdpa", {})
    prompts = [int(x) for x in res["prompts"]]
    for S in prompts:
        a, b = med(k.get(str(S), {}).get("ttft_ms", [])), med(s.get(str(S), {}).get("ttft_ms", []))
        if a is not None and b is not None:
            out.append(f"must: TTFT with the best kernel below transformers sdpa at {S} tokens: "
                       f"{'yes' if a < b else 'NO'} ({a:.2f} vs {b:.2f} ms)")
    for S in prompts:
        d = med(k.get(str(S), {}).get("decode_tok_s", []))
        if d is not None:
            out.append(f"must: decode above {MUST_DECODE_TOK_S:.0f} tok/s at {S}: "
                       f"{'yes' if d > MUST_DECODE_TOK_S else 'NO'} ({d:.1f}); goal above "
                       f"{GOAL_DECODE_TOK_S:.0f}: {'yes' if d > GOAL_DECODE_TOK_S else 'no'}")
    fl = res.get("floors", [])
    if fl and "2048" in [str(S) for S in prompts]:
        f = fl[-1]
        a = med(k.get("2048", {}).get("ttft_ms", []))
        if a is not None and f["ttft_ms"].get("2048"):
            r = a / f["ttft_ms"]["2048"]
            out.append(f"goal: TTFT within {GOAL_TTFT_FLOOR_RATIO}x of the floor at 2048 "
                       f"({f['label']}): {'yes' if r <= GOAL_TTFT_FLOOR_RATIO else 'no'} "
                       f"({r:.2f}x)")
    return out


# ---- main -------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--workdir", default=os.path.join(REPO, "build", "engine-4b", "qwen3-4b"),
                    help="checkpoint directory (created if absent; ~8 GB; keep it out of $OUT)")
    ap.add_argument("--emile", default=os.path.join(REPO, "build", "emile"))
    ap.add_argument("--kernel", help="best kernel (.cu, .so or .c); default: the ladder's top rung")
    ap.add_argument("--kernel-flags", default="", help="-D flags for a .cu kernel")
    ap.add_argument("--kernel-dir", default=os.path.join(REPO, "build", "engine-gpu"),
                    help="where .cu kernels are built (attn_NAME[__FLAGS].so)")
    ap.add_argument("--rebuild-kernels", action="store_true",
                    help="rebuild .cu kernels even when their .so is there")
    ap.add_argument("--reference", default=os.path.join(REPO, "kernels", "attention", "cuda",
                                                        "reference.cu"))
    ap.add_argument("--prompts", default="512,2048")
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--seed", type=int, default=4242, help="seed of the random weights")
    ap.add_argument("--prompt-seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=5, help="timed transformers prefills")
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed prefills first, for transformers and for each taste side")
    ap.add_argument("--decode-repeats", type=int, default=2)
    ap.add_argument("--engine-repeats", type=int, default=3, help="taste processes per prompt")
    ap.add_argument("--no-generate-check", dest="generate_check", action="store_false")
    ap.add_argument("--taste-args", default="", help="extra arguments for emile taste")
    ap.add_argument("--devices-json", help="`emile devices --json` output: floors at this "
                                           "device's measured ceilings too")
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
    dev = torch.cuda.get_device_name()
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "device": dev, "torch": torch.__version__, "transformers": transformers.__version__,
           "shape": "qwen3-4b", "seed": a.seed, "prompt_seed": a.prompt_seed,
           "max_new": a.max_new, "prompts": Ss, "workdir": workdir,
           "transformers_cache": "DynamicCache (the default dynamic KV cache), eager PyTorch, "
                                 "no torch.compile, logits of the last position only",
           "repeats_note": f"{a.repeats} transformers prefills after {a.warmup} warm-ups; "
                           f"{a.engine_repeats} taste processes for the engine, each after "
                           f"{a.warmup} warm-up prefills",
           "rows": {k: {} for k, _ in ROWS}, "agreement": {}, "floors": []}
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
        """engine_cuda.json and .md, after every stage (a run cut short by
        the call's time limit still leaves what it measured)."""
        res["validation"] = {"ok": not problems, "problems": problems, "warnings": warnings,
                             "complete": final}
        table = format_table(res)
        json.dump(res, open(os.path.join(a.out, "engine_cuda.json"), "w"), indent=1)
        open(os.path.join(a.out, "engine_cuda.md"), "w").write(table)
        return table

    def stage(name, fn):
        """Run one stage; an exception is a named problem, not the end."""
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

    def engine():
        kernel = os.path.abspath(a.kernel or best_kernel())
        ref_so = build_so(os.path.abspath(a.reference), a.kernel_dir, "", a.rebuild_kernels)
        kern_so = build_so(kernel, a.kernel_dir, a.kernel_flags, a.rebuild_kernels)
        res["reference"] = {"source": os.path.relpath(a.reference, REPO), "built": ref_so}
        res["kernel"] = {"source": os.path.relpath(kernel, REPO), "flags": a.kernel_flags,
                         "built": kern_so}
        eng, p, w = run_engine(a, workdir, ref_so, kern_so, prompts)
        problems.extend(p)
        warnings.extend(w)
        res["taste_raw"] = {str(S): e["raw"] for S, e in eng.items()}
        for S, e in eng.items():
            for key, row in e["rows"].items():
                res["rows"][key][str(S)] = row
            res["agreement"].setdefault(str(S), {})["engine_reference_vs_kernel"] = \
                e["agreement"]
            if e["raw"] and not any(e["rows"].get(k, {}).get("tokens") for k in e["rows"]):
                res.setdefault("notes", []).append(
                    f"S={S}: taste's JSON carries no generated ids: engine vs transformers "
                    f"tokens not compared")

    def transformers_impl(impl):
        r, p, w = bench_transformers(workdir, impl, ids, a)
        problems.extend(p)
        warnings.extend(w)
        res["rows"][f"transformers_{impl}"] = {str(S): v for S, v in r.items()}

    if not a.skip_engine:
        stage("engine", engine)
    if not a.skip_transformers:
        for impl in ("sdpa", "eager"):
            stage(f"transformers {impl}", lambda impl=impl: transformers_impl(impl))

    # engine vs transformers greedy tokens, where taste gives the ids
    for S in Ss:
        for key in ("engine_reference", "engine_kernel"):
            et = res["rows"][key].get(str(S), {}).get("tokens")
            for impl in ("sdpa", "eager"):
                tt = res["rows"][f"transformers_{impl}"].get(str(S), {}).get("tokens")
                if et is not None and tt is not None:
                    res["agreement"].setdefault(str(S), {})[
                        f"{key}_vs_transformers_{impl}"] = first_divergence(et, tt)
    table = save(True)
    sys.stdout.write("\n" + table)
    print(f"wrote {a.out}/engine_cuda.json and engine_cuda.md")
    return 0 if not problems else 3


if __name__ == "__main__":
    sys.exit(main())
