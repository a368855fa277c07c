#!/usr/bin/env python3
"""Markdown table of the runs in an emile store: per run, the task's shape,
the device, the reference and the best kernel (TFLOP/s or GFLOP/s), the
iteration that reached the best, the wall time to get there (sum of the
iterations' evaluation times) and the best kernel's error against the
reference.  Reads `emile show RUN --json`; usage:
    python3 bench/cook_table.py STORE [EMILE]"""
import json, subprocess, sys

store = sys.argv[1]
emile = sys.argv[2] if len(sys.argv) > 2 else "./build/emile"
runs = json.loads(subprocess.check_output([emile, "runs", "--json", "--store", store]))
print("| B x S | device | reference | best | speedup | best at iteration | wall time to best | roofline | max error | best kernel |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in sorted(runs, key=lambda r: r["id"]):
    run = json.loads(subprocess.check_output([emile, "show", str(r["id"]), "--json", "--store", store]))
    p = run["task"]["params"]
    its = run["iterations"]
    best = next(i for i in its if i["iter"] == run["best_iter"])
    ref = its[0]
    scale, unit = (1e3, "TFLOP/s") if best["gflops"] > 1000 else (1, "GFLOP/s")
    wall = sum(i.get("elapsed_s") or 0 for i in its if i["iter"] <= best["iter"])
    print(f"| {p['batch']}x{p['seq']} | {run['device']['name']} | {ref['gflops']/scale:.1f} {unit} | "
          f"{best['gflops']/scale:.1f} {unit} | {best['speedup']:.0f}x | {best['iter']} of {len(its)-1} | "
          f"{wall:.0f} s | {best['roofline_pct']:.1f}% | {best['report']['max_err']:.2e} | {best['label']} |")
