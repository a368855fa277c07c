#!/usr/bin/env bash
# bench_engine_table.sh -- what can be checked without a GPU of issue 7's
# measurement scripts:
#   1. bench/engine_cuda.py on canned data (tests/data/bench_engine_canned.json,
#      not a measurement): the markdown table (medians, floors, issue 13's
#      verdicts, agreement with the reference engine, breakdowns), `emile
#      taste --json` parsing, the configuration rows derived from taste's
#      objects, the op menus and their taste command lines, the FLOP/byte
#      floors against issue 7's figures; no torch is needed for any of it;
#   2. scripts/golden_qwen3.py and bench/engine_cuda.py compile, and
#      bench/gpu_session.sh parses;
#   3. tests/gpu/engine_cuda_check.c builds with the command in its header,
#      and its golden reading and tolerance rule work: run against a CPU
#      stand-in of the GPU engine (the engine's own CPU forward behind the
#      qwen3_cuda entry points) on tests/data/qwen3-tiny, through --golden,
#      with logits pushed off (must fail), and on a truncated golden.bin
#      (must fail).
set -u
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1
pass=0; fail=0
ok()     { pass=$((pass + 1)); echo "ok - bench_engine: $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - bench_engine: $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/emile-it-bench-engine.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
canned=tests/data/bench_engine_canned.json

# 1. the table from canned data
if python3 bench/engine_cuda.py --table-from $canned > "$tmp/table.md" 2> "$tmp/table.err"; then
  ok "--table-from runs without torch"
else
  not_ok "--table-from failed" "$(head -c 600 "$tmp/table.err")"
fi
expect_line() {   # expect_line WHAT FIXED-STRING
  if grep -qF -- "$2" "$tmp/table.md"; then ok "table: $1"; else not_ok "table: $1" "missing: $2" "$(cat "$tmp/table.md")"; fi
}
expect_line "header" "| run | TTFT 512 (ms) | TTFT 2048 (ms) | decode tok/s 512 | decode tok/s 2048 |"
expect_line "reference engine row, medians" "| engine, its own ops | 11.00 | 40.00 | 205.0 | 180.0 |"
expect_line "one op added" "| engine + decode_attention | 10.50 | 40.50 | 230.0 | 220.0 |"
expect_line "every op at once" "| engine, every op cooked | 6.50 | 27.00 | 310.0 | 260.0 |"
expect_line "transformers sdpa row" "| transformers sdpa (dynamic cache, eager) | 26.00 | 48.00 | 30.5 | 29.0 |"
expect_line "the compiled peer" "| transformers static cache + torch.compile | 20.00 | 45.00 | 320.0 | 250.0 |"
expect_line "issue 7's floors" "| physical floor (issue 7: H100 measured ceilings) | 5.0 | 21.0 | 368 | 368 |"
expect_line "device and date" "**Device:** CANNED TEST DATA (not a measurement). **Date:** 2000-01-01 00:00 UTC."
expect_line "the cooked kernels" "Cooked kernels: attention \`rung7_wgmma.cu\`; decode_attention \`rung2_gqa.cu\`."
expect_line "must verdict" "must: decode with every op cooked at least 250 tok/s at 2048: yes (260.0); goal 300: no"
expect_line "TTFT goal" "goal: TTFT at 2048 tokens at most 26 ms: no (27.00 ms)"
expect_line "the compiled peer verdict" "goal: ahead of transformers compiled on decode at 512: no (310.00 vs 320.00 tok/s)"
expect_line "agreement" "- 512 tokens, against the reference engine's tokens: engine + decode_attention: same tokens; engine, every op cooked: first divergence at token 2"
expect_line "same tokens verdict" "same tokens as the reference engine with every op swapped at 2048: yes"
expect_line "breakdown rows" "| decode | lm_head | 0.5000 | 12.5% | 0.2500 | 50.0% |"
expect_line "validation problems named" "- transformers eager S=2048: non-finite logits"

# configuration rows from taste's objects; parsing; floors; menus
if python3 - "$canned" > "$tmp/py.txt" 2>&1 <<'PY'
import json, os, sys
sys.path.insert(0, "bench")
import engine_cuda as e
assert "torch" not in sys.modules, "engine_cuda imports torch at module level"
res = json.load(open(sys.argv[1]))
row, problems = e.config_row(res["taste_raw"]["512"], res["max_new"])
assert row["ttft_ms"] == [10.0, 12.0] and row["decode_tok_s"] == [200.0, 210.0], row
assert row["tokens"] == [5, 6, 7, 8] and row["decode_path"] == "graph" and not problems, problems
# too few tokens, tokens changing between processes, no run: problems
bad = json.loads(json.dumps(res["taste_raw"]["512"]))
bad[1]["runs"][0]["ids"] = [5, 6, 0, 8]
_, problems = e.config_row(bad, 4)
assert any("differ between taste processes (first at 2)" in p for p in problems), problems
_, problems = e.config_row(bad, 8)
assert any("not 8" in p for p in problems), problems
_, problems = e.config_row([{"runs": []}], 4)
assert problems == ["taste output without a run"], problems
ag = e.agreement(res["rows"], [512, 2048])
assert ag == {"512": {"engine_decode_attention": -1, "engine_all": 2},
              "2048": {"engine_decode_attention": -1, "engine_all": -1}}, ag
# taste's JSON after other output; a broken one
j = e.parse_taste("building kernel...\nnvcc ok\n" + json.dumps(res["taste_raw"]["512"][0]) + "\n")
assert j["prompt_tokens"] == 512
try:
    e.parse_taste("no json here")
    raise SystemExit("parse_taste accepted garbage")
except ValueError:
    pass
assert e.first_divergence([1, 2, 3], [1, 2, 4]) == 2 and e.first_divergence([1], [1]) == -1
assert e.first_divergence([1, 2], [1, 2, 3]) == 2
# issue 7: ~21 ms at 2048 tokens and ~368 tok/s are 16.1 TFLOP and 8.04 GB
assert abs(e.prefill_flops(2048) / 1e12 - 16.12) < 0.01, e.prefill_flops(2048)
assert abs(2.96e12 / e.decode_bytes() - 368) < 1, e.decode_bytes()
ttft, dec = e.floors([512, 2048])
assert ttft[2048] == 21.0 and dec == 368.0 and 4.5 < ttft[512] < 5.5
c = e.device_ceilings("docs/evidence/2026-11-26/devices.json")
assert c and c[0] == "NVIDIA H200" and 700 < c[1] < 900 and 4000 < c[2] < 4500, c
ttft, dec = e.floors([2048], c[1], c[2])
assert 19 < ttft[2048] < 22 and 500 < dec < 560, (ttft, dec)
# prompts: fixed, in range, round-trip through the --prompt-ids file
ids = e.prompt_ids(2048, 7)
assert ids == e.prompt_ids(2048, 7) and len(ids) == 2048 and 0 <= min(ids) and max(ids) < 151936
p = os.path.join(os.environ.get("TMPDIR", "/tmp"), "emile-bench-engine-ids.txt")
e.write_ids(p, ids)
assert e.read_ids(p) == ids
os.remove(p)
# the cooked kernels are files of the ladders; build names match op_ladders_cuda.py's
assert os.path.isfile(e.best_kernel()) and e.best_kernel().endswith(".cu")
for op in e.OPS:
    assert os.path.isfile(e.best_op_kernel(op)), op
assert e.best_op_kernel("gate_up").endswith("kernels/gemv/cuda/rung3_splitk.cu")
assert e.best_op_kernel("decode_attention").endswith("kernels/decode_attention/cuda/rung3_merge.cu")
assert e.so_name("k/rung7_wgmma.cu", "b", "-DEMILE_QBUF=1") == "b/attn_rung7_wgmma__DEMILE_QBUF_1.so"
assert e.so_name("kernels/gemv/cuda/rung2_vec.cu", "b") == "b/gemv_rung2_vec.so"
assert e.so_name("kernels/lm_head/cuda/reference.cu", "b") == "b/lm_head_reference.so"
# configurations and their taste command lines (one side: --reference OP=K)
cfg = e.config_menus(["reference", "qkv_proj", "all"], {op: op + ".so" for op in e.OPS})
assert [k for k, _, _ in cfg] == ["engine_reference", "engine_qkv_proj", "engine_all"]
assert cfg[0][2] == {} and cfg[1][2] == {"qkv_proj": "qkv_proj.so"} and len(cfg[2][2]) == 7
cmd = e.taste_cmd("emile", "W", cfg[2][2], "p.txt", 128, "", 2, True)
assert cmd[:4] == ["emile", "taste", "--device", "cuda"] and "--kernel" not in cmd
assert [cmd[i + 1] for i, x in enumerate(cmd) if x == "--reference"] == \
    [f"{op}={op}.so" for op in e.OPS], cmd
assert cmd[-3:] == ["--warmup", "2", "--breakdown"] and "--json" in cmd and "--prompt-ids" in cmd
assert "--breakdown" not in e.taste_cmd("emile", "W", {}, "p", 8)
try:
    e.config_menus(["softmax"], {})
    raise SystemExit("config_menus accepted an unknown configuration")
except ValueError:
    pass
print("python checks passed")
PY
then ok "configuration rows, taste parsing, floors, prompts, menus (python, no torch)"
else not_ok "python checks" "$(cat "$tmp/py.txt")"; fi

# main() end to end without a GPU: stub torch/transformers modules, a
# checkpoint marker, prebuilt kernel names and a stand-in `emile` that
# prints taste's JSON (--skip-transformers)
st=$tmp/stub
mkdir -p "$st/mods/torch" "$st/mods/transformers" "$st/work/qwen3-4b" "$st/kern" "$st/out"
cat > "$st/mods/torch/__init__.py" <<'PY'
__version__ = "stub"
class cuda:
    is_available = staticmethod(lambda: True)
    get_device_name = staticmethod(lambda: "STUB GPU")
PY
printf '__version__ = "stub"\nclass Qwen3Config: pass\nclass Qwen3ForCausalLM: pass\n' > "$st/mods/transformers/__init__.py"
python3 -c "import json, sys; sys.path.insert(0, 'scripts'); sys.path.insert(0, sys.argv[2])
import golden_qwen3 as g; json.dump(g._marker(4242), open(sys.argv[1], 'w'))" "$st/work/qwen3-4b/emile_random.json" "$st/mods"
echo '{}' > "$st/work/qwen3-4b/config.json"
touch "$st/work/qwen3-4b/model.safetensors" "$st/kern/attn_rung7_wgmma.so" "$st/kern/gemv_rung3_splitk.so" \
  "$st/kern/decode_attention_rung2_gqa.so"
cat > "$st/emile" <<'SH'
#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/args.txt"
args="$*"; ids=${args##*--prompt-ids }; ids=${ids%% *}
S=$(wc -w < "$ids")
n=$(grep -o -- '--reference' <<<"$args" | wc -l)
echo "loading..."
echo "{\"device\":\"cuda\",\"decode_path\":\"graph\",\"prompt_tokens\":$S,\"runs\":[{\"role\":\"reference\",\"attention\":\"r\",\"ttft_ms\":$((S / 8 - n)),\"decode_tok_s\":$((160 + 10 * n)),\"tokens\":128,\"ids\":[$(seq -s, 1 128)]}]}"
SH
chmod +x "$st/emile"
if PYTHONPATH=$st/mods python3 bench/engine_cuda.py --skip-transformers --workdir "$st/work/qwen3-4b" \
     --out "$st/out" --emile "$st/emile" --kernel-dir "$st/kern" --engine-repeats 2 > "$st/log.txt" 2>&1 \
   && grep -qF "| engine, its own ops | 64.00 | 256.00 | 160.0 | 160.0 |" "$st/out/engine_cuda.md" \
   && grep -qF "| engine, every op cooked | 57.00 | 249.00 | 230.0 | 230.0 |" "$st/out/engine_cuda.md" \
   && grep -qF "| engine + gate_up | 63.00 | 255.00 | 170.0 | 170.0 |" "$st/out/engine_cuda.md" \
   && [ "$(grep -c -- '--prompt-ids' "$st/args.txt")" = 36 ] \
   && [ "$(grep -c -- '--breakdown' "$st/args.txt")" = 4 ] \
   && grep -q -- "--reference gate_up=$st/kern/gemv_rung3_splitk.so" "$st/args.txt" \
   && grep -q -- "--prompt-ids $st/work/qwen3-4b/prompt_2048.txt --max-new 128 --json" "$st/args.txt" \
   && [ "$(wc -w < "$st/work/qwen3-4b/prompt_2048.txt")" = 2048 ] \
   && python3 -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['validation']['ok'] and r['device'] == 'STUB GPU' and r['agreement']['2048']['engine_all'] == -1" "$st/out/engine_cuda.json"; then
  ok "engine_cuda.py main: nine configurations, prompt files, table and JSON (stubbed torch, stand-in emile)"
else not_ok "engine_cuda.py main with stubs" "$(tail -40 "$st/log.txt")" "$(cat "$st/out/engine_cuda.md" 2>/dev/null)"; fi

# 2. compile / parse
pyc=$tmp/pyc
if python3 -c "import py_compile, sys
for f in sys.argv[2:]: py_compile.compile(f, cfile=sys.argv[1], doraise=True)" "$pyc" \
    bench/engine_cuda.py bench/op_ladders_cuda.py scripts/golden_qwen3.py 2> "$tmp/pyc.err"; then
  ok "engine_cuda.py and golden_qwen3.py compile"
else not_ok "python compile" "$(cat "$tmp/pyc.err")"; fi
if bash -n bench/gpu_session.sh 2> "$tmp/sh.err"; then ok "gpu_session.sh parses"
else not_ok "gpu_session.sh" "$(cat "$tmp/sh.err")"; fi

# 3. engine_cuda_check against a CPU stand-in of the GPU engine
cat > "$tmp/fake_engine.c" <<'C'
/* The qwen3_cuda entry points over the engine's CPU forward (fp32). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3.h"
#include "engine/qwen3_cuda.h"
struct qwen3_cuda { qwen3_config_t c; qwen3_weights_t w; qwen3_state_t s; };
int qwen3_cuda_create(const qwen3_config_t *c, int max_seq, int max_chunk, qwen3_cuda_get_fn get,
                      void *user, uint64_t seed, qwen3_cuda_t **out, char *err, size_t errlen)
{
    (void)get; (void)seed;
    qwen3_cuda_t *m = calloc(1, sizeof *m);
    m->c = *c;
    if (qwen3_weights_from_checkpoint(&m->w, c, user, err, errlen) ||
        qwen3_state_init(&m->s, c, max_seq, max_chunk, err, errlen))
        return -1;
    *out = m;
    return 0;
}
void qwen3_cuda_destroy(qwen3_cuda_t *m)
{
    qwen3_weights_free(&m->w);
    qwen3_state_free(&m->s);
    free(m);
}
int qwen3_cuda_forward(qwen3_cuda_t *m, emile_kernel_fn attn, const int *tokens, int n, int pos,
                       int all_logits, float *logits, char *err, size_t errlen)
{
    (void)attn;
    if (qwen3_forward(&m->c, &m->w, &m->s, NULL, tokens, n, pos, all_logits, err, errlen))
        return -1;
    size_t rows = all_logits ? (size_t)n : 1;
    const char *push = getenv("FAKE_PUSH");    /* logit 7 of every row pushed up */
    for (size_t r = 0; push && r < rows; r++)
        m->s.logits[r * m->c.vocab + 7] += (float)atof(push);
    if (logits)
        memcpy(logits, m->s.logits, rows * m->c.vocab * sizeof *logits);
    return 0;
}
int qwen3_cuda_argmax(qwen3_cuda_t *m) { (void)m; return 0; }
int qwen3_cuda_device_name(qwen3_cuda_t *m, char *buf, size_t len)
{
    (void)m;
    snprintf(buf, len, "CPU stand-in");
    return 0;
}
C
# the build command of engine_cuda_check.c's header
if cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc tests/gpu/engine_cuda_check.c \
     src/engine/safetensors.c src/engine/qwen3_config.c -o "$tmp/engine_cuda_check" \
     -Wl,-Bstatic -ljansson -Wl,-Bdynamic -ldl -lm 2> "$tmp/cc.err"; then
  ok "engine_cuda_check builds with its header's command"
else not_ok "engine_cuda_check build" "$(head -c 1500 "$tmp/cc.err")"; fi
if cc -std=c11 -D_GNU_SOURCE -O1 -fPIC -shared -Iinclude -Isrc "$tmp/fake_engine.c" \
     src/engine/qwen3_forward.c src/engine/qwen3_weights.c src/engine/attn_slot.c \
     src/engine/op_slot.c src/util/clock.c \
     src/engine/safetensors.c src/engine/qwen3_config.c -o "$tmp/fake_engine.so" \
     -ljansson -ldl -lm 2> "$tmp/fake.err"; then
  ok "CPU stand-in of the GPU engine builds"
else not_ok "CPU stand-in build" "$(head -c 1500 "$tmp/fake.err")"; fi
chk=$tmp/engine_cuda_check
if [ -x "$chk" ] && [ -f "$tmp/fake_engine.so" ]; then
  if "$chk" "$tmp/fake_engine.so" > "$tmp/c1.txt" 2>&1 && grep -q '^5 passed, 0 failed' "$tmp/c1.txt" \
      && grep -q 'tests/data/qwen3-tiny/golden.bin read (24 tokens, vocab 512)' "$tmp/c1.txt"; then
    ok "engine_cuda_check: the CPU forward passes the tiny golden logits (default directory)"
  else not_ok "engine_cuda_check default" "$(cat "$tmp/c1.txt")"; fi
  mkdir -p "$tmp/gold"
  cp tests/data/qwen3-tiny/config.json tests/data/qwen3-tiny/model.safetensors tests/data/qwen3-tiny/golden.bin "$tmp/gold/"
  if "$chk" "$tmp/fake_engine.so" --golden "$tmp/gold" > "$tmp/c2.txt" 2>&1 && grep -q "golden: $tmp/gold" "$tmp/c2.txt" \
      && grep -q '^5 passed, 0 failed' "$tmp/c2.txt"; then
    ok "engine_cuda_check --golden DIR"
  else not_ok "engine_cuda_check --golden" "$(cat "$tmp/c2.txt")"; fi
  # 0.05 on one logit: within 3e-2 of max |logit| and no argmax moved
  if FAKE_PUSH=0.05 "$chk" "$tmp/fake_engine.so" > "$tmp/c3.txt" 2>&1 && grep -q '^5 passed, 0 failed' "$tmp/c3.txt"; then
    ok "engine_cuda_check: a small error passes"
  else not_ok "engine_cuda_check small error" "$(cat "$tmp/c3.txt")"; fi
  # 1000 on one logit: every argmax moves, far beyond the tolerance
  if ! FAKE_PUSH=1000 "$chk" "$tmp/fake_engine.so" > "$tmp/c4.txt" 2>&1 \
      && grep -q 'FAIL: GPU prefill matches the golden logits' "$tmp/c4.txt" \
      && grep -q '24 argmax differ (0 near ties' "$tmp/c4.txt"; then
    ok "engine_cuda_check: wrong logits fail"
  else not_ok "engine_cuda_check wrong logits" "$(cat "$tmp/c4.txt")"; fi
  head -c 100 tests/data/qwen3-tiny/golden.bin > "$tmp/gold/golden.bin"
  if ! "$chk" "$tmp/fake_engine.so" --golden "$tmp/gold" > "$tmp/c5.txt" 2>&1 && grep -q '^FAIL: .*golden.bin read' "$tmp/c5.txt"; then
    ok "engine_cuda_check: a truncated golden.bin fails"
  else not_ok "engine_cuda_check truncated golden" "$(cat "$tmp/c5.txt")"; fi
fi

echo "bench_engine: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
