"""Reference ageing numbers from NREL BLAST-Lite for the melv-model calibration test.

Not run in CI. Reproduce with:

    python3 -m venv /work/venv-model && /work/venv-model/bin/pip install blast-lite
    /work/venv-model/bin/python crates/model/tools/blast_reference.py

Model: `Lfp_Gr_250AhPrismatic` (Gasper et al., https://doi.org/10.1016/j.est.2023.109042), the
large-format prismatic LFP/graphite cell closest to the MS-7K-U's 280 Ah cells.
The printed values are pasted into `crates/model/src/ageing.rs` (test `blast_reference_points`).
"""

import numpy as np
from blast import models


def daily_home_profile(dod: float, days: int, dt_s: float = 900.0):
    """One home-battery day repeated: charge from PV 09:00-14:00 up to 0.90, hold, discharge
    18:00-24:00 down to 0.90 - dod, rest overnight. SOC sampled every dt_s."""
    t = np.arange(0.0, days * 86400.0 + dt_s, dt_s)
    hour = (t % 86400.0) / 3600.0
    hi, lo = 0.90, 0.90 - dod
    soc = np.where(hour < 9, lo,
          np.where(hour < 14, lo + (hi - lo) * (hour - 9) / 5,
          np.where(hour < 18, hi,
                   hi - (hi - lo) * (hour - 18) / 6)))
    return t, soc


def full_cycle_profile(days: int, dt_s: float = 900.0):
    """One 100 % DoD cycle a day: charge 0 -> 1 in 2 h, rest, discharge 1 -> 0 in 2 h, rest."""
    t = np.arange(0.0, days * 86400.0 + dt_s, dt_s)
    hour = (t % 86400.0) / 3600.0
    soc = np.where(hour < 2, hour / 2,
          np.where(hour < 12, 1.0,
          np.where(hour < 14, 1.0 - (hour - 12) / 2, 0.0)))
    return t, soc


def run(t, soc, temp_c, years=None, efc=None):
    cell = models.Lfp_Gr_250AhPrismatic()
    inp = {"Time_s": t, "SOC": soc, "Temperature_C": np.full_like(t, temp_c)}
    cell.simulate_battery_life(inp, threshold_time=years, threshold_efc=efc)
    return cell


def report(name, cell):
    days = cell.stressors["t_days"][-1]
    efc = cell.stressors["efc"][-1]
    print(f"{name}: days={days:.0f} efc={efc:.0f} q={cell.outputs['q'][-1]:.4f} "
          f"q_cal={cell.outputs['q_t'][-1]:.4f} q_cyc={cell.outputs['q_EFC'][-1]:.4f}")


if __name__ == "__main__":
    # 240 EFC a year is 0.657 EFC a day: a daily swing of 0.657.
    t, soc = daily_home_profile(240.0 / 365.0, 7)
    report("home_240efc_25C_10y", run(t, soc, 25.0, years=10))
    report("home_240efc_35C_10y", run(t, soc, 35.0, years=10))
    report("home_240efc_10C_10y", run(t, soc, 10.0, years=10))
    t, soc = full_cycle_profile(7)
    report("full_cycles_25C_10000efc", run(t, soc, 25.0, efc=10000))
    for s in (0.3, 0.5, 1.0):
        t = np.arange(0.0, 7 * 86400.0 + 900.0, 900.0)
        report(f"storage_soc{s}_25C_10y", run(t, np.full_like(t, s), 25.0, years=10))
