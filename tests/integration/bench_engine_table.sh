#!/usr/bin/env bash
# bench_engine_table.sh -- what can be checked without a GPU of issue 7's
# measurement scripts:
#   1. bench/engine_cuda.py on canned data (tests/data/bench_engine_canned.json,
#      not a measurement): the markdown table (medians, floors, verdicts,
#      agreement), `emile taste --json` parsing, the engine rows derived from
#      taste's objects, the FLOP/byte floors against issue 7's figures; no
#      torch is needed for any of it;
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
expect_line "engine reference row, medians" "| engine (reference attention) (\`attn_reference.so\`) | 62.00 | 805.00 | 100.0 | 90.5 |"
expect_line "engine kernel row, medians" "| engine (best kernel) (\`attn_rung7_wgmma.so\`) | 30.00 | 40.50 | 200.0 | 180.5 |"
expect_line "transformers sdpa row" "| transformers sdpa | 36.00 | 50.00 | 15.5 | 14.0 |"
expect_line "a missing figure is a dash" "| transformers eager | 56.00 | – | 12.0 | – |"
expect_line "issue 7's floors" "| physical floor (issue 7: H100 measured ceilings) | 5.0 | 21.0 | 368 | 368 |"
expect_line "device and date" "**Device:** CANNED TEST DATA (not a measurement). **Date:** 2000-01-01 00:00 UTC."
expect_line "must verdict" "must: TTFT with the best kernel below transformers sdpa at 2048 tokens: yes (40.50 vs 50.00 ms)"
expect_line "goal verdict" "goal: TTFT within 1.3x of the floor at 2048 (physical floor (issue 7: H100 measured ceilings)): no (1.93x)"
expect_line "agreement" "- 2048 tokens: engine reference vs best kernel: differ (first divergence at token 2); engine reference vs transformers sdpa: first divergence at token 2"
expect_line "validation problems named" "- transformers eager S=2048: non-finite logits"

# the same rows from taste's own objects; parsing; floors
if python3 - "$canned" > "$tmp/py.txt" 2>&1 <<'PY'
import json, os, sys
sys.path.insert(0, "bench")
import engine_cuda as e
assert "torch" not in sys.modules, "engine_cuda imports torch at module level"
res = json.load(open(sys.argv[1]))
for S, tastes in res["taste_raw"].items():
    rows, agreement, problems, warnings = e.engine_rows(tastes, res["max_new"])
    for key in ("engine_reference", "engine_kernel"):
        for f in ("ttft_ms", "decode_tok_s"):
            assert rows[key][f] == res["rows"][key][S][f], (S, key, f)
    assert agreement["agree"] == res["agreement"][S]["engine_reference_vs_kernel"]["agree"]
    assert not problems, problems
    assert bool(warnings) == (not agreement["agree"]), warnings
# ids exposed by taste are kept; a count is not mistaken for ids
r = e.engine_rows(res["taste_raw"]["2048"], 4)[0]
assert r["engine_kernel"]["tokens"] == [5, 6, 7, 8] and r["engine_kernel"]["decode_path"] == "graph"
assert e.engine_rows(res["taste_raw"]["512"], 4)[0]["engine_kernel"]["tokens"] is None
# too few tokens, a run missing: problems
bad = json.loads(json.dumps(res["taste_raw"]["512"][:1]))
bad[0]["runs"] = bad[0]["runs"][:1]
_, _, problems, _ = e.engine_rows(bad, 8)
assert any("'kernel'" in p for p in problems) and any("not 8" in p for p in problems), problems
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
# the best kernel is a file of the ladder; build names
assert os.path.isfile(e.best_kernel()) and e.best_kernel().endswith(".cu")
assert e.so_name("k/rung7_wgmma.cu", "b", "-DEMILE_QBUF=1") == "b/attn_rung7_wgmma__DEMILE_QBUF_1.so"
cmd = e.taste_cmd("emile", "W", "r.so", "k.so", "p.txt", 128)
assert cmd[:4] == ["emile", "taste", "--device", "cuda"] and "--prompt-ids" in cmd and "--json" in cmd
assert e.taste_cmd("emile", "W", "r", "k", "p", 8, "", 2)[-2:] == ["--warmup", "2"]
t = dict(res["taste_raw"]["2048"][0], decode_path_note="no graphs: CUDA 11")
assert e.engine_rows([t], 4)[0]["engine_kernel"]["decode_path"] == "graph (no graphs: CUDA 11)"
print("python checks passed")
PY
then ok "engine rows, taste parsing, floors, prompts (python, no torch)"
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
touch "$st/work/qwen3-4b/model.safetensors" "$st/kern/attn_reference.so" "$st/kern/attn_rung7_wgmma.so"
cat > "$st/emile" <<'SH'
#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/args.txt"
args="$*"; ids=${args##*--prompt-ids }; ids=${ids%% *}
S=$(wc -w < "$ids")
echo "loading..."
echo "{\"device\":\"cuda\",\"decode_path\":\"graph\",\"prompt_tokens\":$S,\"runs\":[{\"role\":\"reference\",\"attention\":\"r\",\"ttft_ms\":$((S / 8)),\"decode_tok_s\":160,\"tokens\":128},{\"role\":\"kernel\",\"attention\":\"k\",\"ttft_ms\":$((S / 64)),\"decode_tok_s\":170,\"tokens\":128}],\"agree\":true,\"first_divergence\":-1}"
SH
chmod +x "$st/emile"
if PYTHONPATH=$st/mods python3 bench/engine_cuda.py --skip-transformers --workdir "$st/work/qwen3-4b" \
     --out "$st/out" --emile "$st/emile" --kernel-dir "$st/kern" --engine-repeats 2 > "$st/log.txt" 2>&1 \
   && grep -qF "| engine (best kernel) (\`rung7_wgmma.cu\`) | 8.00 | 32.00 | 170.0 | 170.0 |" "$st/out/engine_cuda.md" \
   && [ "$(grep -c -- '--prompt-ids' "$st/args.txt")" = 4 ] \
   && grep -q -- "--prompt-ids $st/work/qwen3-4b/prompt_2048.txt --max-new 128 --json" "$st/args.txt" \
   && [ "$(wc -w < "$st/work/qwen3-4b/prompt_2048.txt")" = 2048 ] \
   && python3 -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['validation']['ok'] and r['device'] == 'STUB GPU'" "$st/out/engine_cuda.json"; then
  ok "engine_cuda.py main: taste runs, prompt files, table and JSON (stubbed torch, stand-in emile)"
else not_ok "engine_cuda.py main with stubs" "$(tail -40 "$st/log.txt")" "$(cat "$st/out/engine_cuda.md" 2>/dev/null)"; fi

# 2. compile / parse
pyc=$tmp/pyc
if python3 -c "import py_compile, sys
for f in sys.argv[2:]: py_compile.compile(f, cfile=sys.argv[1], doraise=True)" "$pyc" \
    bench/engine_cuda.py scripts/golden_qwen3.py 2> "$tmp/pyc.err"; then
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
