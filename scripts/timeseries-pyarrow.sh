#!/usr/bin/env bash
# Reads `melv simulate --timeseries` Parquet back with pyarrow (issue 19, Build 3): the documented
# columns in order, their types, one row per interval, the values equal to the CSV of the same run,
# and the hourly PV means summing to the JSON's PV energy.
#
# pyarrow is installed into a venv under the target directory (PyPI, once). Usage:
#   scripts/timeseries-pyarrow.sh [YEARS]      # default 2 years of examples/self-consumption.toml
#   MELV=target/release/melv scripts/timeseries-pyarrow.sh   # a built binary instead of cargo run
set -euo pipefail
cd "$(dirname "$0")/.."
years="${1:-2}"
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
venv="$target/pyarrow-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pyarrow
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
melv() {
  if [ -n "${MELV:-}" ]; then "$MELV" "$@"; else cargo run --quiet -p melv-cli -- "$@"; fi
}
for f in ts.parquet ts.csv; do
  melv simulate examples/self-consumption.toml --years "$years" --step 1h \
    --timeseries "$out/$f" --timeseries-step 1h --json "$out/k.json" --quiet >/dev/null
done
"$venv/bin/python" - "$out" <<'PY'
import csv, json, math, sys
import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
t = pq.read_table(f"{out}/ts.parquet")
unit = ["power_w", "soc", "soc_bms", "cell_v_min", "cell_v_max", "temp_min_c", "temp_max_c"]
want = ["time_utc", "time_local", "interval_s", "pv_w", "load_w", "grid_w", "battery_w"]
want += [f"u1_{c}" for c in unit] + ["reason", "alerts"]
assert t.column_names == want, t.column_names
assert t.schema.field("time_utc").type == pa.timestamp("ms", tz="UTC"), t.schema
for c in want[2:-2]:
    assert t.schema.field(c).type == pa.float64(), (c, t.schema.field(c).type)
k = json.load(open(f"{out}/k.json"))
hours = round(sum(y["days"] for y in k["years"]) * 24)
assert t.num_rows == hours, (t.num_rows, hours)
rows = list(csv.reader(open(f"{out}/ts.csv")))
assert rows[0] == want and len(rows) - 1 == t.num_rows
cols = t.to_pydict()
for i, name in enumerate(want[2:-2], start=2):
    for r in range(0, t.num_rows, 97):
        a, b = cols[name][r], float(rows[r + 1][i]) if rows[r + 1][i] else math.nan
        assert a == b or (math.isnan(a) and math.isnan(b)), (name, r, a, b)
pv = sum(cols["pv_w"]) / 1000.0
assert abs(pv - k["pv_kwh"]) < 1e-6 * k["pv_kwh"], (pv, k["pv_kwh"])
assert cols["time_local"][0].endswith("-05:00"), cols["time_local"][0]
print(f"pyarrow {pa.__version__}: {t.num_rows} rows x {t.num_columns} columns read back; "
      f"PV {pv:.1f} kWh = JSON {k['pv_kwh']:.1f} kWh")
PY
