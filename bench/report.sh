#!/usr/bin/env bash
# bench/report.sh [BUILD_DIR] [OUT_DIR] [--only NAME]... — run every benchmark of bench/ and
# write one report: OUT_DIR/index.html (self-contained, inline SVG, opens offline) and
# OUT_DIR/bench.json, every figure as a ratio against the baseline measured in the same run,
# with the machine description and the date. `make bench` calls it. Default OUT_DIR:
# BUILD_DIR/bench-report. Exit 0 when every benchmark ran, 1 when one failed or printed no
# BENCH line (the report is written anyway), 2 usage.
#
# The convention (tiny on purpose, so that a shell script, a C binary or R can follow it):
#   - a benchmark is bench/bench_<name>.sh (run as `bash bench_<name>.sh` with no arguments) or
#     a C program bench/bench_<name>.c built to BUILD_DIR/bench/bench_<name> (run with no
#     arguments, unless bench_<name>.sh exists: then the script runs it); both get TESSERA (the binary), TS_BUILD_DIR and TS_SOURCE_DIR in the
#     environment and run from a fresh temporary directory;
#   - for each figure it prints one line to stdout
#       BENCH name=<dotted.name> value=<number> unit=<unit> baseline=<number> ratio=<number> [better=higher|lower] [note=<word_or_%20encoded>]
#     where baseline is the same figure for the reference implementation measured in the same
#     run, and ratio is the advantage of tessera over the baseline (> 1: tessera better). If
#     ratio is missing it is value/baseline (better=higher, the default) or baseline/value
#     (better=lower, e.g. seconds). Values contain no spaces. Every other line is kept in the
#     benchmark's log, shown in the report.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=""; out=""; only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "USAGE: bench/report.sh [BUILD_DIR] [OUT_DIR] [--only NAME]..." >&2; exit 2 ;;
    *) if [ -z "$build" ]; then build=$1; elif [ -z "$out" ]; then out=$1; else echo "USAGE: unexpected '$1'" >&2; exit 2; fi; shift ;;
  esac
done
build=$(cd "${build:-$here/build}" && pwd)
out=${out:-$build/bench-report}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
[ -x "$build/tessera" ] || { echo "USAGE: $build/tessera not found: build first" >&2; exit 2; }
. "$here/scripts/env.sh"
export TESSERA="$build/tessera" TS_BUILD_DIR="$build" TS_SOURCE_DIR="$here"

wanted() { [ ${#only[@]} -eq 0 ] && return 0; local n; for n in "${only[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# name<TAB>command, for every benchmark
list=$(mktemp); runs=$(mktemp); trap 'rm -f "$list" "$runs"' EXIT
for s in "$here"/bench/bench_*.sh; do
  [ -e "$s" ] || continue
  n=$(basename "$s" .sh); n=${n#bench_}
  printf '%s\tbash %q\n' "$n" "$s" >> "$list"
done
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] && [ -f "$b" ] || continue
  n=$(basename "$b"); n=${n#bench_}
  # bench_x.sh drives bench_x (it makes the input the program needs): list only the script
  if cut -f1 "$list" | grep -qx "$n"; then continue; fi
  printf '%s\t%q\n' "$n" "$b" >> "$list"
done

status=0
while IFS=$'\t' read -r name cmd; do
  wanted "$name" || continue
  log="$out/logs/$name.log"
  echo "bench: $name" >&2
  dir=$(mktemp -d /tmp/ts_bench_report.XXXXXX)
  t0=$(date +%s.%N)
  set +e
  (cd "$dir" && eval "$cmd") > "$log" 2>&1 < /dev/null
  rc=$?
  set -e
  t1=$(date +%s.%N)
  rm -rf "$dir"
  n_lines=$(grep -c '^BENCH ' "$log" || true)
  if [ "$rc" -ne 0 ] || [ "$n_lines" -eq 0 ]; then status=1; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(echo "$t1 - $t0" | bc -l)" "$log" >> "$runs"
done < "$list"

# machine and build
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$here" status --porcelain 2>/dev/null | grep -qv '^??' && echo "+changes" || true)
/usr/bin/python3 - "$out" "$runs" "${cpu:-unknown}" "$(nproc)" "${mem:-0}" "$(uname -srm)" "$(hostname)" \
  "$("$TESSERA" --version 2>/dev/null || echo tessera)" "$commit$dirty" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" <<'PY'
import html, json, math, os, sys, urllib.parse
out, runs, cpu, cores, mem, osname, host, version, commit, date = sys.argv[1:11]

def parse(line):
    f = {}
    for tok in line.split()[1:]:
        if '=' in tok:
            k, v = tok.split('=', 1)
            f[k] = urllib.parse.unquote(v)
    def num(k):
        try:
            x = float(f[k]); return x if math.isfinite(x) else None
        except (KeyError, ValueError):
            return None
    better = f.get('better', 'higher')
    value, base, ratio = num('value'), num('baseline'), num('ratio')
    if ratio is None and value and base:
        ratio = value / base if better == 'higher' else base / value
    return {'name': f.get('name', '?'), 'value': value, 'unit': f.get('unit', ''), 'baseline': base,
            'ratio': ratio, 'better': better, 'note': f.get('note')}

benches = []
for row in open(runs):
    name, rc, secs, log = row.rstrip('\n').split('\t')
    text = open(log, errors='replace').read()
    figs = [parse(l) for l in text.splitlines() if l.startswith('BENCH ')]
    benches.append({'benchmark': name, 'exit_code': int(rc), 'seconds': round(float(secs), 3),
                    'figures': figs, 'log': text[-20000:]})
machine = {'cpu_model': cpu, 'cores': int(cores), 'memory_bytes': int(float(mem)), 'os': osname, 'hostname': host}
doc = {'schema': 'tessera-bench/1', 'date': date, 'tessera': version, 'commit': commit, 'machine': machine,
       'convention': 'ratio = advantage of tessera over the baseline measured in the same run (> 1: tessera better)',
       'benchmarks': benches}
with open(os.path.join(out, 'bench.json.tmp'), 'w') as f:
    json.dump(doc, f, indent=2)
os.replace(os.path.join(out, 'bench.json.tmp'), os.path.join(out, 'bench.json'))

e = html.escape
def chart(figs):
    figs = [x for x in figs if x['ratio'] is not None]
    if not figs: return ''
    W, left, right, bar, gap, top = 760, 260, 80, 20, 6, 8
    hi = max(max(x['ratio'] for x in figs), 1.0) * 1.1
    span = W - left - right
    H = top + len(figs) * (bar + gap) + 22
    s = [f'<svg class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}">']
    for i, x in enumerate(figs):
        y = top + i * (bar + gap); w = max(1, round(span * x['ratio'] / hi))
        cls = 'good' if x['ratio'] >= 1 else 'bad'
        s.append(f'<text x="{left-8}" y="{y+bar-6}" text-anchor="end" class="cl">{e(x["name"])}</text>'
                 f'<rect x="{left}" y="{y}" width="{w}" height="{bar}" class="{cls}"/>'
                 f'<text x="{left+w+6}" y="{y+bar-6}" class="cv">×{x["ratio"]:.2f}</text>')
    x1 = left + round(span * 1.0 / hi)
    s.append(f'<line x1="{x1}" y1="0" x2="{x1}" y2="{H-16}" class="one"/><text x="{x1+3}" y="{H-4}" class="cv">baseline = 1</text></svg>')
    return ''.join(s)

def fmt(v):
    return '–' if v is None else (f'{v:,.0f}' if abs(v) >= 1000 else f'{v:.4g}')

css = ("body{font:14px/1.45 system-ui,'DejaVu Sans',sans-serif;margin:0;background:#f6f7f9;color:#1d2430}"
       "header{background:#22304a;color:#fff;padding:16px 28px}h1{margin:0;font-size:22px}main{padding:8px 28px 30px;max-width:1100px}"
       "section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 18px;margin:14px 0}"
       "table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #e4e7ec;padding:4px 10px;text-align:left}"
       "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f0f2f5}.ok{color:#17803d}.bad{color:#b42318}"
       "svg .cl{font-size:12px;fill:#334}svg .cv{font-size:11px;fill:#556}svg .good{fill:#4f7cc3}svg .bad{fill:#d9822b}"
       "svg .one{stroke:#b42318;stroke-dasharray:4 3}pre{background:#f4f5f7;padding:8px;font-size:12px;overflow:auto;max-height:320px}")
h = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>tessera benchmarks {e(date)}</title>'
     f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
     f'<style>{css}</style></head><body><header><h1>tessera benchmark report</h1>'
     f'<div>{e(version)} · commit {e(commit)} · {e(date)}</div></header><main>',
     '<section><h2>Machine</h2><table>',
     *[f'<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>' for k, v in
       [('CPU', cpu), ('cores', cores), ('memory', f'{int(float(mem))/2**30:.1f} GiB'), ('OS', osname), ('host', host)]],
     '</table><p>Every figure is a ratio against its baseline measured in the same run on this machine '
     '(&gt; 1: tessera better). Absolute values are shown for reference only.</p></section>']
allfigs = [dict(x, name=f'{b["benchmark"]}: {x["name"]}') for b in benches for x in b['figures']]
h.append('<section><h2>Summary</h2>' + (chart(allfigs) or '<p class="bad">No benchmark printed a BENCH line.</p>') + '</section>')
for b in benches:
    ok = b['exit_code'] == 0 and b['figures']
    h.append(f'<section id="{e(b["benchmark"])}"><h2>{e(b["benchmark"])} <small class="{"ok" if ok else "bad"}">'
             f'exit {b["exit_code"]}, {b["seconds"]:.1f} s{"" if b["figures"] else ", no BENCH line"}</small></h2>')
    if b['figures']:
        h.append('<table><tr><th>figure</th><th>tessera</th><th>baseline</th><th>unit</th><th>ratio</th><th>note</th></tr>')
        for x in b['figures']:
            r = x['ratio']
            h.append(f'<tr><td>{e(x["name"])}</td><td class="n">{fmt(x["value"])}</td><td class="n">{fmt(x["baseline"])}</td>'
                     f'<td>{e(x["unit"])}</td><td class="n {"ok" if r and r >= 1 else "bad"}">{"–" if r is None else f"×{r:.2f}"}</td>'
                     f'<td>{e(x["note"] or "")}</td></tr>')
        h.append('</table>')
    h.append(f'<details><summary>log</summary><pre>{e(b["log"])}</pre></details></section>')
h.append('</main></body></html>\n')
with open(os.path.join(out, 'index.html.tmp'), 'w') as f:
    f.write(''.join(h))
os.replace(os.path.join(out, 'index.html.tmp'), os.path.join(out, 'index.html'))
PY
echo "$out/index.html"
exit $status
