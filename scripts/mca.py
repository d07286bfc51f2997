#!/usr/bin/env python3
"""ARM kernel speed without a device: each NEON / dotprod kernel's inner loop, as rustc emits it for
aarch64, through llvm-mca's models of the cores sparq's users run on, against the peak of the same
multiply instructions on that core.

    python3 scripts/mca.py                 # build the asm, print the table (markdown)
    python3 scripts/mca.py --write docs/arm-kernels.md
    python3 scripts/mca.py --check docs/arm-kernels.md   # fail if a kernel lost > 5% MACs/cycle

For every kernel below, the loop taken is the one (a label and the backward branch to it) with the
most multiply-accumulate instructions among the functions of the kernel's module whose names match;
its instructions go to `llvm-mca -mcpu=CORE -iterations=200` (L1 hits assumed: these are upper
bounds). The peak is llvm-mca's throughput on the same multiply instructions alone, each into its
own accumulator (16 rotating registers, sources never written): what the core's multiply pipes allow
for that instruction mix. The bottleneck is the resource llvm-mca shows the most pressure on when
that pressure is at least 90% of the cycles per iteration, and "dependencies" otherwise (latency
chains, e.g. one accumulator updated twice in a row).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "aarch64-unknown-linux-gnu"

# (kernel, tile as the registry names it, mangled-path pieces that select the functions, extension)
KERNELS = [
    ("qs8_gemm_4x8c4_neon", "4x8c4", ["4gemm4neon"], ""),
    ("qs8_gemm_4x8c4_dotprod", "4x8c4", ["4gemm7dotprod"], "+dotprod"),
    ("qs8_gemm_8x8c4_i8mm", "8x8c4", ["4gemm4i8mm"], "+i8mm"),
    ("qs8_dwconv_c16_neon", "c16", ["9depthwise4neon"], ""),
    ("qs8_spgemm_4x8c4_neon", "4x8c4", ["6spgemm4neon"], ""),
    ("qs8_spgemm_4x8c4_dotprod", "4x8c4", ["6spgemm7dotprod"], "+dotprod"),
    ("qs16_gemm_4x2c8_neon", "4x2c8", ["4qs164neon", "qs16_gemm_4x2_neon"], ""),
    ("qs16_gemm_2x8c4_neon", "2x8c4", ["4qs164neon", "qs16_gemm_2x8c4_neon"], ""),
    ("qs16_dwconv_c8_neon", "c8", ["4qs164neon", "qs16_dwconv_c8_neon"], ""),
]

# (core, what runs it, features it has)
CORES = [
    ("cortex-a53", "Pi 3, Zero 2, little cores", ""),
    ("cortex-a55", "little cores of most phones", "+dotprod"),
    ("cortex-a72", "Pi 4", ""),
    ("cortex-a76", "Pi 5, mid phones", "+dotprod"),
    ("neoverse-n1", "Graviton 2, Ampere Altra", "+dotprod"),
    # Armv8.6 cores with the int8 matrix multiply: only the kernels that need it are run on them.
    ("cortex-a710", "big cores of phones since 2022", "+dotprod,+i8mm"),
    ("neoverse-n2", "Azure Cobalt 100, Alibaba Yitian 710", "+dotprod,+i8mm"),
]


def macs(line):
    """Multiply-accumulates one instruction does (8-bit or 16-bit lanes), 0 for the others."""
    m = re.match(r"\s*(\w+)\s+v\d+\.(\d+)([bhsd])\s*,\s*v\d+\.(\d+)([bhsd])", line)
    if not m:
        return 0
    op, out_lanes, src_lanes = m.group(1), int(m.group(2)), int(m.group(4))
    if op in ("sdot", "udot", "usdot"):
        return 4 * out_lanes
    if op in ("smmla", "ummla", "usmmla"):
        return 32
    if op in ("smull", "smull2", "umull", "umull2", "smlal", "smlal2", "umlal", "umlal2", "mla", "mul"):
        return out_lanes
    return 0


def functions(asm):
    """{symbol: [lines]} of every function in the .s file."""
    out, name, body = {}, None, []
    for line in asm.splitlines():
        m = re.match(r"^([_A-Za-z][\w$.]*):\s*$", line)
        if m and not line.startswith(".L"):
            if name:
                out[name] = body
            name, body = m.group(1), []
        elif name:
            body.append(line)
    if name:
        out[name] = body
    return out


def instruction(line):
    s = line.split("//")[0].strip()
    if not s or s.startswith(".") or s.endswith(":"):
        return None
    return s


def loops(body):
    """The innermost multiplying loops of a function: the instructions from a label to a later branch
    back to it that multiply, for the spans that hold no other such span."""
    labels, found = {}, []
    for i, line in enumerate(body):
        m = re.match(r"^(\.L\w+):", line.strip())
        if m:
            labels[m.group(1)] = i
            continue
        ins = instruction(line)
        if ins is None:
            continue
        m = re.match(r"(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+.*?(\.L\w+)\s*$", ins)
        if m and m.group(2) in labels:
            found.append((labels[m.group(2)], i))
    spans = {(a, b): [x for x in (instruction(l) for l in body[a:b + 1]) if x] for a, b in found}
    spans = {k: v for k, v in spans.items() if any(macs(i) for i in v)}
    return [v for (a, b), v in spans.items() if not any((a, b) != (c, d) and a <= c and d <= b for c, d in spans)]


def pick(funcs, pieces):
    best = None
    for name, body in funcs.items():
        if not all(p in name for p in pieces):
            continue
        for lp in loops(body):
            n = sum(macs(i) for i in lp)
            if n and (best is None or (n, -len(lp)) > (best[0], -len(best[1]))):
                best = (n, lp, name)
    return best


def mca_tool():
    for t in ("llvm-mca-19", "/usr/lib/llvm-19/bin/llvm-mca"):
        if shutil.which(t):
            return t
    sys.exit("llvm-mca not found (Debian: apt install llvm-19)")


def run_mca(tool, core, attrs, lines):
    cmd = [tool, "-mtriple=aarch64", f"-mcpu={core}", "-iterations=200"]
    if attrs:
        cmd.append(f"-mattr={attrs}")
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[0] if r.stderr.strip() else "llvm-mca failed")
    out = r.stdout
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / 200.0
    # Resource pressure per iteration: the header names the resources, the next line their load.
    pressure = {}
    lines_ = out.splitlines()
    for k, l in enumerate(lines_):
        if l.startswith("Resource pressure per iteration:"):
            names = lines_[k + 1].split()
            loads = lines_[k + 2].split()
            resources = {}
            for l2 in lines_:
                m = re.match(r"\[(\d+(?:\.\d+)?)\]\s+-\s+(\S+)", l2.strip())
                if m:
                    resources[f"[{m.group(1)}]"] = m.group(2)
            for n, v in zip(names, loads):
                if v != "-":
                    pressure[resources.get(n, n)] = float(v)
            break
    return cycles, pressure


def peak_block(loop):
    """The loop's multiply instructions alone, each into its own accumulator (v16-v31 rotating), reading
    registers nothing writes (v0-v3)."""
    muls = [i for i in loop if macs(i)]
    out = []
    while len(out) < 32:
        for ins in muls:
            k = len(out)
            dst = 16 + k % 16
            rest = re.sub(r"v\d+", lambda m, c=[0]: f"v{(c.__setitem__(0, c[0] + 1) or c[0]) % 4}", ins.split(",", 1)[1])
            op, d = ins.split(None, 1)
            arr = re.match(r"v\d+(\.\w+)", d).group(1)
            out.append(f"{op}\tv{dst}{arr},{rest}")
    return out


def build_asm():
    env = dict(os.environ)
    subprocess.run(
        ["cargo", "rustc", "--release", "-p", "sparq-runtime", "--target", TARGET, "--lib", "--", "--emit", "asm"],
        cwd=ROOT,
        check=True,
        env=env,
    )
    target_dir = env.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    files = sorted(glob.glob(os.path.join(target_dir, TARGET, "release", "deps", "sparq_runtime-*.s")), key=os.path.getmtime)
    if not files:
        sys.exit("no sparq_runtime .s file was emitted")
    return open(files[-1]).read()


def table(asm):
    tool = mca_tool()
    funcs = functions(asm)
    rows = []
    for kernel, tile, pieces, ext in KERNELS:
        found = pick(funcs, pieces)
        if found is None:
            rows.append((kernel, None))
            continue
        n, loop, _ = found
        for core, _, feats in CORES:
            if (ext and ext not in feats) or ("+i8mm" in feats and ext != "+i8mm"):
                continue
            cycles, pressure = run_mca(tool, core, feats, loop)
            peak_cycles, _ = run_mca(tool, core, feats, peak_block(loop))
            peak_macs = sum(macs(i) for i in peak_block(loop))
            peak = peak_macs / peak_cycles
            top = max(pressure.items(), key=lambda kv: kv[1]) if pressure else ("?", 0.0)
            neck = top[0] if top[1] >= 0.9 * cycles else "dependencies"
            rows.append((kernel, (core, tile, n, len(loop), cycles, n / cycles, peak, neck)))
    return tool, rows


def render(tool, rows):
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    v = re.search(r"LLVM version ([\d.]+)", version)
    out = [
        f"| kernel | core | tile | MACs / iteration | instructions | cycles / iteration | MACs / cycle | peak MACs / cycle | of peak | bottleneck |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kernel, r in rows:
        if r is None:
            out.append(f"| `{kernel}` | (inner loop not found) | | | | | | | | |")
            continue
        core, tile, n, ins, cycles, rate, peak, neck = r
        out.append(
            f"| `{kernel}` | {core} | {tile} | {n} | {ins} | {cycles:.2f} | {rate:.2f} | {peak:.2f} | {100 * rate / peak:.0f}% | {neck} |"
        )
    return f"llvm-mca {v.group(1) if v else '?'}, `-iterations=200`, L1 hits assumed.\n\n" + "\n".join(out) + "\n"


def recorded(path):
    """{(kernel, core): MACs per cycle} from a table this script wrote."""
    got = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0].startswith("`"):
            try:
                got[(cells[0].strip("`"), cells[1])] = float(cells[6])
            except ValueError:
                pass
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", help="write the table into this markdown file (between the markers)")
    ap.add_argument("--check", help="fail when a kernel's MACs/cycle fell more than 5%% below this file's")
    a = ap.parse_args()
    tool, rows = table(build_asm())
    text = render(tool, rows)
    print(text)
    if a.write:
        begin, end = "<!-- mca table begin -->", "<!-- mca table end -->"
        doc = open(a.write).read() if os.path.exists(a.write) else f"{begin}\n{end}\n"
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        open(a.write, "w").write(f"{head}{begin}\n{text}{end}{tail}")
    if a.check:
        want = recorded(a.check)
        bad = []
        for kernel, r in rows:
            if r is None:
                bad.append(f"{kernel}: inner loop not found")
                continue
            old = want.get((kernel, r[0]))
            if old is not None and r[5] < 0.95 * old:
                bad.append(f"{kernel} on {r[0]}: {r[5]:.2f} MACs/cycle, recorded {old:.2f}")
        if bad:
            sys.exit("kernels slower than recorded:\n  " + "\n  ".join(bad))
        print(f"every kernel within 5% of {a.check}")


if __name__ == "__main__":
    main()
