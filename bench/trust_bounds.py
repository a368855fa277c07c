#!/usr/bin/env python3
"""trust_bounds.py -- the data behind the timing policy's bounds
(src/worker/timing.h, docs/SECURITY.md): honest kernels evaluated many
times through `emile worker`, each evaluation's trust figures collected --

  gap_us        median over the timed runs of (worker's clock - reported time)
  null_gap_us   the same on the null runner at the same moments
  thread_us     median excess of the busiest runner thread's CPU over the
                reported time (the forged-time check (b)), and its slack
  held_ratio    the held-back set's CPU (or wall) time over the timed median:
                the run-to-run noise the held-back check must forgive
  outside_ms    the runner's CPU between commands per run

usage: python3 bench/trust_bounds.py EMILE [--runs 20] [--load 0|N]
         [--kernels kernels/attention/cpu/v1_blocked.c,...] [--seq 256]
  --load N: N busy processes (a `while true` loop each) beside the worker,
  to measure under load.  Prints one line per evaluation and a summary
  (max, p99, p90 of each figure) as JSON on the last line.
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def q(v, p):
    v = sorted(v)
    if not v:
        return None
    i = min(len(v) - 1, int(round(p * (len(v) - 1))))
    return v[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("emile")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--load", type=int, default=0)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--kernels", default=",".join(os.path.join(ROOT, "kernels/attention/cpu", k) for k in
                    ["v1_blocked.c", "v2_flash.c", "v3_simd.c", "v4_parallel.c"]) + "," +
                    os.path.join(ROOT, "tests/kernels/cpu/well_behaved.c"))
    a = ap.parse_args()
    ref = open(os.path.join(ROOT, "kernels/attention/cpu/reference.c")).read()
    task = {"op": "attention", "params": {"batch": 1, "seq": a.seq, "q_heads": 4, "kv_heads": 2, "head_dim": 32,
            "causal": 1}, "dtype": "f32", "backend": "cpu", "reference_source": ref, "time_limit_s": 20,
            "memory_limit_mb": 512}
    load = [subprocess.Popen(["sh", "-c", "while true; do :; done"]) for _ in range(a.load)]
    figs = {"gap_us": [], "null_gap_us": [], "thread_excess_us": [], "thread_slack_us": [], "held_ratio": [],
            "outside_ms": [], "invalid": 0, "evaluations": 0}
    try:
        w = subprocess.Popen([a.emile, "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        i = 0
        for r in range(a.runs):
            for k in a.kernels.split(","):
                i += 1
                w.stdin.write(json.dumps({"id": i, "cmd": "evaluate", "task": task,
                                          "kernel": {"source": open(k).read()}}) + "\n")
                w.stdin.flush()
                rep = json.loads(w.stdout.readline())
                figs["evaluations"] += 1
                name = os.path.basename(k)
                if rep.get("status") != "valid":
                    figs["invalid"] += 1
                    print(f"{name:18s} {rep.get('status')}: {str(rep.get('error'))[:200]}", flush=True)
                    continue
                t = rep["report"]["trust"]
                h = t["held_back"]
                ratio = (h["cpu_ms"][-1] if h.get("clock") == "runner cpu" else h["times_ms"][-1]) / h["median_ms"]
                for key, val in [("gap_us", t["outside_gap_us"]), ("null_gap_us", t["null_runner_gap_us"]),
                                 ("thread_excess_us", t.get("cpu_main_excess_us")),
                                 ("thread_slack_us", t.get("cpu_main_slack_us")), ("held_ratio", ratio),
                                 ("outside_ms", t.get("cpu_outside_ms_per_run"))]:
                    if val is not None:
                        figs[key].append(val)
                print(f"{name:18s} median {rep['report']['time_ms']['median']:.3f} ms  gap {t['outside_gap_us']:.0f} us "
                      f"(null {t['null_runner_gap_us']:.0f})  thread +{t.get('cpu_main_excess_us', 0):.0f} us "
                      f"(slack {t.get('cpu_main_slack_us', 0):.0f})  held x{ratio:.2f} (tries {h['sets_tried']})  "
                      f"outside {t.get('cpu_outside_ms_per_run', 0):.3f} ms", flush=True)
        w.stdin.close()
        w.wait()
    finally:
        for p in load:
            p.kill()
    summary = {k: ({"max": max(v), "p99": q(v, 0.99), "p90": q(v, 0.9), "median": statistics.median(v), "n": len(v)}
                   if isinstance(v, list) and v else v) for k, v in figs.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
