#!/usr/bin/env python3
"""melv and NREL PySAM side by side on the Greensboro year (issue 18, BENCHMARKS.md "Simulator").

PySAM's `Battery` module (CustomGenerationBatteryResidential defaults, self-consumption dispatch,
one 7 kWh battery, 4.5 kW discharge / 3.75 kW charge, 90 % AC round trip: data/README.md) runs the
year at 1 h and at 1 min on data/greensboro-h0-{hourly,1min}-2019 (the same profile melv reads), and
melv's `examples/self-consumption.toml` runs the same year at 1 h, 15 min, 60 s and 1 s through the
release binary `target/release/examples/year` (`cargo build --release -p melv-sim --example year`).

Every figure is a whole-process median over REPEAT runs, each in its own process (interpreter start
and module import included for PySAM; process start and scenario loading included for melv), taken
pair by pair (PySAM, then melv) so that the machine's load hits both alike. CPU time is the child's
user + system time.

Install PySAM: python3 -m venv /tmp/pysam && /tmp/pysam/bin/pip install nrel-pysam   (7.1.1.post1)
Run:           /tmp/pysam/bin/python scripts/bench-pysam.py [--repeat 3] [--no-1s]
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOURLY = os.path.join(ROOT, "data", "greensboro-h0-hourly-2019.csv")
MINUTE = os.path.join(ROOT, "data", "greensboro-h0-1min-2019.csv.gz")
SITE = os.path.join(ROOT, "examples", "self-consumption.toml")
MELV = os.path.join(ROOT, "target", "release", "examples", "year")
# The longest profile this script reads: a leap year at 1 min, with a header.
MAX_ROWS = 527_041


def read_profile(path):
    """(load_kw, pv_kw) lists from timestamp,load_kw,pv_kw; a bad row is an error naming it."""
    opener = gzip.open if path.endswith(".gz") else open
    load, pv = [], []
    with opener(path, "rt") as f:
        header = f.readline().strip().split(",")
        if header[:3] != ["timestamp", "load_kw", "pv_kw"]:
            raise SystemExit(f"{path}:1: expected header timestamp,load_kw,pv_kw, got {header}")
        for n, line in enumerate(f, start=2):
            if n > MAX_ROWS:
                raise SystemExit(f"{path}:{n}: more than {MAX_ROWS} rows")
            cols = line.strip().split(",")
            try:
                load.append(float(cols[1]))
                pv.append(float(cols[2]))
            except (IndexError, ValueError) as e:
                raise SystemExit(f"{path}:{n}: {e}")
    return load, pv


def pysam_year(profile):
    """One PySAM Battery year on `profile` (the step follows from its length). Returns the KPIs."""
    import PySAM.Battery as Battery

    load, pv = read_profile(profile)
    m = Battery.default("CustomGenerationBatteryResidential")
    m.Lifetime.system_use_lifetime_output = 0
    m.Lifetime.analysis_period = 1
    m.BatterySystem.en_batt = 1
    m.BatterySystem.batt_replacement_option = 0
    m.BatterySystem.batt_ac_or_dc = 1  # AC coupled
    m.BatterySystem.batt_meter_position = 0  # behind the meter
    m.BatterySystem.batt_computed_bank_capacity = 7.0  # manual 7.1: 7 kWh
    m.BatterySystem.batt_power_discharge_max_kwac = 4.5  # manual 7.1
    m.BatterySystem.batt_power_charge_max_kwac = 3.75  # manual 7.1
    m.BatterySystem.batt_power_discharge_max_kwdc = 4.7
    m.BatterySystem.batt_power_charge_max_kwdc = 3.9
    eff = 100.0 * 0.9**0.5  # 90 % AC round trip (manual 7.1), split evenly
    m.BatterySystem.batt_ac_dc_efficiency = eff
    m.BatterySystem.batt_dc_ac_efficiency = eff
    m.BatteryCell.batt_minimum_SOC = 0.0
    m.BatteryCell.batt_maximum_SOC = 100.0
    m.BatteryCell.batt_initial_SOC = 50.0
    m.BatteryDispatch.batt_dispatch_choice = 5  # self-consumption
    m.SystemOutput.gen = pv
    m.Load.load = load
    m.Load.crit_load = [0.0] * len(load)
    t0 = time.process_time()
    m.execute(0)
    run_cpu = time.process_time() - t0
    o = m.Outputs
    dt_h = 8760.0 / len(load) if len(load) < 525_600 else 1.0 / 60.0
    imp = sum(max(g, 0.0) for g in o.grid_power) * dt_h
    exp = -sum(min(g, 0.0) for g in o.grid_power) * dt_h
    # SAM's grid_power is positive into the grid.
    return {"steps": len(load), "run_cpu_s": run_cpu, "grid_import_kwh": exp, "grid_export_kwh": imp}


def child(cmd):
    """Runs `cmd` in its own process; returns (wall s, CPU s, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-1s", action="store_true", help="skip melv's 1 s year")
    ap.add_argument("--child", choices=["hourly", "minute"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(pysam_year(HOURLY if a.child == "hourly" else MINUTE)))
        return
    if not os.path.exists(MELV):
        raise SystemExit(f"{MELV} missing: cargo build --release -p melv-sim --example year")
    if not 1 <= a.repeat <= 20:
        raise SystemExit("--repeat: 1..=20")
    pairs = [("1 h", "hourly", 3600), ("60 s", "minute", 60), ("15 min", None, 900)]
    if not a.no_1s:
        pairs.append(("1 s", None, 1))
    rows = []
    for label, pysam_case, step in pairs:
        p_cpu, m_cpu, m_wall, ratios = [], [], [], []
        for _ in range(a.repeat):
            pc = None
            if pysam_case:
                _, pc, out = child([sys.executable, __file__, "--child", pysam_case])
                p_cpu.append(pc)
                pysam_kpis = json.loads(out)
            mw, mc, out = child([MELV, SITE, str(step)])
            m_cpu.append(mc)
            m_wall.append(mw)
            melv_kpis = json.loads(out)["kpis"]
            if pc is not None:
                ratios.append(pc / mc)
        row = {
            "step": label,
            "melv_cpu_s": statistics.median(m_cpu),
            "melv_wall_s": statistics.median(m_wall),
            "melv_steps": melv_kpis["steps"],
            "melv_grid_import_kwh": melv_kpis["grid_import_kwh"],
        }
        if p_cpu:
            row.update(
                pysam_cpu_s=statistics.median(p_cpu),
                ratio=statistics.median(ratios),
                pysam_grid_import_kwh=pysam_kpis["grid_import_kwh"],
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| step | melv CPU s (median) | PySAM Battery CPU s | PySAM / melv |")
    print("|---|---:|---:|---:|")
    for r in rows:
        p = f"{r['pysam_cpu_s']:.3f}" if "pysam_cpu_s" in r else ""
        q = f"{r['ratio']:.1f}x" if "ratio" in r else ""
        print(f"| {r['step']} | {r['melv_cpu_s']:.3f} | {p} | {q} |")


if __name__ == "__main__":
    main()
