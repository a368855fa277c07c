#!/usr/bin/env python3
"""triton_aot.py -- build a Triton candidate into a kernel shared object.

The compile step of the Triton language of the cuda backend
(src/backend/lang_triton.c): the worker runs it in the compile sandbox as it
runs nvcc for CUDA C.  It

  1. checks the candidate's text (triton_decl.check_source: only imports of
     triton and math, @triton.jit functions, constants and the emile_launch
     declaration; no module-level code of the candidate runs);
  2. compiles the declared kernel ahead of time with triton.compile for the
     target (sm_90 by default; Triton's bundled ptxas), no GPU needed;
  3. checks what the kernel needs against what the device gives (shared
     memory) and the compiled parameter list against the declaration;
  4. writes a C wrapper that embeds the cubin and exports the standard
     emile_kernel entry point (include/emile.h), and builds it with nvcc
     against the shared CUDA runtime, as CUDA C candidates are built.

The wrapper loads the cubin with the runtime's library API
(cudaLibraryLoadData / cudaLibraryGetKernel) and launches it with
cudaLaunchKernel: one runtime and one context with the harness, the runner's
launch capture sees the launch (per-kernel registers, shared memory,
occupancy in the profile), and it links without libcuda (CI builds it on
machines without a driver).  Nothing of Python runs when the kernel runs.

usage: triton_aot.py SRC -o OUT.so -I INCLUDE_DIR [--arch 90] [--smem-limit BYTES]
                     [--nvcc NVCC] [--name DISPLAY_NAME] [--site SITE_PACKAGES] [--cubin-only]
exit 0 when built; 1 with the reason on stderr (a compile error).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triton_decl as D  # noqa: E402
from triton_wrapper import wrapper_c  # noqa: E402

# Shared memory per block (opt-in maximum) by compute capability, when the
# backend does not pass the device's own figure.
SMEM_OPTIN = {70: 98304, 75: 65536, 80: 166912, 86: 101376, 87: 166912, 89: 101376,
              90: 232448, 100: 232448, 103: 232448, 120: 101376}


class CompileError(Exception):
    pass


def quiet_env(workdir):
    """Triton's caches and dumps in the build directory (the sandbox's HOME
    may be unwritable); no autotuning or interpretation here."""
    home = os.path.join(workdir, ".triton")
    os.environ["TRITON_HOME"] = home
    os.environ["TRITON_CACHE_DIR"] = os.path.join(home, "cache")
    os.environ.pop("TRITON_INTERPRET", None)


def load_candidate(path, name):
    """Check, then import the candidate (its module level is constants only)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    tree, checker = D.check_source(text, name)
    import triton  # noqa: F401  (after quiet_env)
    mod = types.ModuleType("emile_candidate")
    mod.__file__ = path
    sys.modules["emile_candidate"] = mod
    try:
        exec(compile(tree, path, "exec"), mod.__dict__)
    except Exception as e:   # e.g. an import of a triton module that does not exist
        raise CompileError(f"{name}: error: {type(e).__name__}: {e}") from None
    D.check_reachable(checker, mod)
    return text, mod, checker


def jit_params(fn):
    """(names, constexpr names, names with defaults -> default)."""
    names = list(fn.arg_names)
    constexpr = [p.name for p in fn.params if p.is_constexpr]
    defaults = {p.name: p.default for p in fn.params if p.has_default}
    return names, constexpr, defaults


def ptx_params(ptx, kernel):
    """The .param types of the entry `kernel` in the PTX, in order."""
    m = re.search(r"\.entry\s+" + re.escape(kernel) + r"\s*\((.*?)\)", ptx, re.S)
    if not m:
        return None
    return [re.sub(r"\s+", " ", p.strip()) for p in m.group(1).split(",") if p.strip()]


def ptx_block(ptx):
    m = re.search(r"\.(?:reqntid|maxntid)\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?", ptx)
    if not m:
        return None
    return int(m.group(1)) * int(m.group(2) or 1) * int(m.group(3) or 1)


def check_ptx_types(L, params, kernel):
    """Each declared argument against the compiled parameter: pointers are
    .u64, fp32 is .f32 (never a double), i64 is .u64, i32 is .u32 ..."""
    extra = len(params) - len(L.args)
    if extra < 0 or extra > 2:
        raise CompileError(f"internal: {kernel} was compiled with {len(params)} parameters for "
                           f"{len(L.args)} declared arguments (Triton adds 0-2 scratch pointers)")
    for a, p in zip(L.args, params):
        if a.is_ptr:
            ok = ".u64" in p or ".b64" in p
        else:
            want = D.SCALARS[a.ty][1]
            ok = f".{want}" in p or (want == "u32" and (".b32" in p or ".s32" in p)) or \
                (want == "u64" and (".b64" in p or ".s64" in p)) or (want == "b16" and ".u16" in p)
        if not ok:
            raise CompileError(f"internal: argument {a.name} declared {a.ty} but compiled as '{p}'")
    return extra


def located(e, text, checker, name):
    """Triton's CompilationError at the file's line and column: Triton
    counts lines from the `def` of the function it was compiling."""
    node, fsrc = getattr(e, "node", None), getattr(e, "src", None) or ""
    fdef = next((f for f in checker.jit if fsrc.lstrip().startswith(f"def {f.name}(")), None)
    msg = getattr(e, "error_message", None)
    if fdef is None or not hasattr(node, "lineno") or not msg:
        return f"{name}: error: the Triton compiler rejected the kernel:\n{e}"
    line, col = fdef.lineno + node.lineno - 1, node.col_offset + 1
    lines = text.splitlines()
    out = f"{name}:{line}:{col}: error: in {fdef.name}: {msg}"
    if 0 < line <= len(lines):
        out += f"\n    {lines[line - 1].rstrip()}\n    {' ' * (col - 1)}^"
    return out


def triton_compile(mod, L, name, arch, smem_limit, text, checker):
    import triton
    from triton.backends.compiler import GPUTarget
    fn = getattr(mod, L.kernel, None)
    if fn is None:
        raise CompileError(f"{name}: error: emile_launch names kernel '{L.kernel}', which the file "
                           "does not define")
    if not isinstance(fn, triton.runtime.jit.JITFunction):
        raise CompileError(f"{name}: error: '{L.kernel}' is not a @triton.jit function")
    names, constexpr, defaults = jit_params(fn)
    try:
        D.match_signature(L, names, constexpr, defaults, L.kernel)
    except ValueError as e:
        raise CompileError(f"{name}: error: {e}") from None
    signature, constants, attrs = {}, {}, {}
    for i, n in enumerate(names):
        if n in constexpr:
            signature[n] = "constexpr"
            val = L.constexprs[n] if n in L.constexprs else defaults[n]
            if isinstance(val, str):
                import triton.language as tl
                if not hasattr(tl, val):
                    raise CompileError(f"{name}: error: constexpr {n} = '{val}' is neither a number nor a "
                                       "triton.language dtype")
                val = getattr(tl, val)
            constants[n] = val
        else:
            a = next(x for x in L.args if x.name == n)
            signature[n] = a.ty
            if a.align16:
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constants, attrs=attrs)
    target = GPUTarget("cuda", arch, 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": L.num_warps, "num_stages": L.num_stages})
    try:
        ck = triton.compile(src, target=target, options=options.__dict__)
    except triton.compiler.errors.CompilationError as e:
        raise CompileError(located(e, text, checker, name)) from None
    except Exception as e:
        msg = str(e).strip()
        raise CompileError(f"{name}: error: compiling {L.kernel} failed: {type(e).__name__}: {msg}") from None
    md = ck.metadata
    if md.shared > smem_limit:
        from triton.runtime.errors import OutOfResources
        raise CompileError(f"{name}: error: {L.kernel} with num_warps={L.num_warps}, "
                           f"num_stages={L.num_stages}, {constants_text(L)}: "
                           f"{OutOfResources(md.shared, smem_limit, 'shared memory')}")
    if getattr(md, "num_ctas", 1) != 1:
        raise CompileError(f"{name}: error: num_ctas={md.num_ctas} (thread-block clusters) is not supported")
    if getattr(md, "launch_cooperative_grid", False) or getattr(md, "launch_pdl", False):
        raise CompileError(f"{name}: error: cooperative or programmatic-dependent launches are not supported")
    if getattr(md, "tmem_size", 0):
        raise CompileError(f"{name}: error: tensor memory (Blackwell) is not supported")
    return ck


def constants_text(L):
    return ", ".join(f"{k}={v}" for k, v in L.constexprs.items()) or "no constexprs"


def build_so(c_path, out, include_dir, nvcc):
    cmd = [nvcc, "-O2", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden", "-cudart", "shared",
           "-I" + include_dir, c_path, "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise CompileError("internal: the generated wrapper did not build:\n" + (r.stdout + r.stderr)[-3000:])
    return cmd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("-o", dest="out", required=True)
    ap.add_argument("-I", dest="include", default=".")
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--smem-limit", type=int, default=0)
    ap.add_argument("--nvcc", default=os.environ.get("EMILE_NVCC", "nvcc"))
    ap.add_argument("--name", default=None, help="the candidate's name in messages (default: its file name)")
    ap.add_argument("--cubin-only", action="store_true", help="stop after the cubin and the wrapper source")
    ap.add_argument("--site", default=None, help="a site-packages directory holding Triton (a venv's, "
                    "when its own interpreter is not runnable here)")
    a = ap.parse_args(argv)
    if a.site:
        sys.path.insert(0, a.site)
    name = a.name or os.path.basename(a.src)
    outdir = os.path.dirname(os.path.abspath(a.out))
    base = a.out[:-3] if a.out.endswith(".so") else a.out
    smem_limit = a.smem_limit or SMEM_OPTIN.get(a.arch, 101376)
    workdir = tempfile.mkdtemp(prefix="triton-", dir=outdir)
    quiet_env(workdir)
    try:
        text, mod, checker = load_candidate(a.src, name)
        try:
            L = D.read_launch(getattr(mod, D.DECL_NAME), None)
        except ValueError as e:
            raise CompileError(f"{name}: error: {e}") from None
        ck = triton_compile(mod, L, name, a.arch, smem_limit, text, checker)
        md = ck.metadata
        params = ptx_params(ck.asm["ptx"], md.name)
        if params is None:
            raise CompileError(f"internal: no entry {md.name} in the PTX")
        extra = check_ptx_types(L, params, md.name)
        block = ptx_block(ck.asm["ptx"]) or 32 * md.num_warps
        cubin = ck.asm["cubin"]
        with open(base + ".cubin", "wb") as f:
            f.write(cubin)
        c_src = wrapper_c(L, md, cubin, block, extra, name)
        c_path = base + "_wrapper.c"
        with open(c_path, "w") as f:
            f.write(c_src)
        print(f"triton {getattr(md, 'triton_version', '?')}: {md.name} for sm_{a.arch}: block {block} threads "
              f"({md.num_warps} warps), {md.num_stages} stages, {md.shared} B shared memory, "
              f"{extra} scratch pointer(s), grid ({', '.join(g.src for g in L.grid)}); {constants_text(L)}")
        if not a.cubin_only:
            build_so(c_path, a.out, a.include, a.nvcc)
        return 0
    except (D.CandidateError, CompileError) as e:
        msg = str(e).replace(os.path.dirname(os.path.abspath(a.src)) + "/", "")
        print(msg, file=sys.stderr)
        return 1
    except Exception as e:   # a bug of ours or of Triton: say so, without a traceback
        msg = f"{type(e).__name__}: {e}".replace(os.path.dirname(os.path.abspath(a.src)) + "/", "")
        print(f"{name}: internal error in the Triton build step: {msg}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    sys.exit(main())
