"""Generate the LFP/graphite full-cell OCV table used by `crates/model/src/ocv.rs`.

Not run in CI. Full-cell OCV = U_cathode(y) - U_anode(x), with
  * LFP cathode OCP of Afshar, Morris & Khajepour (2017), "Efficient electrochemical model for
    lithium-ion cells", arXiv:1709.03970 (the LFP OCP in PyBaMM's Prada2013 parameter set);
  * graphite anode OCP of Safari & Delacourt (2011), J. Electrochem. Soc. 158(5) A562,
    doi:10.1149/1.3567007 (the same anode curve NREL BLAST-Lite uses for its Ua stressor);
  * stoichiometry windows: anode x = 0.035 -> 0.82, cathode y = 0.99 -> 0.01 for SOC 0 -> 1,
    chosen so that the cell reaches 2.5 V (EVE LF280K discharge end) at about SOC 0 at C/20 and
    rests at about 3.43 V when full, like commercial 280 Ah LFP cells.
Run: /work/venv-model/bin/python crates/model/tools/ocv_table.py
"""
import numpy as np

X0, X1, Y0, Y1 = 0.035, 0.82, 0.99, 0.01
S_MIN, S_MAX, STEP = -0.03, 1.03, 0.005


def ua(x):
    return (0.6379 + 0.5416 * np.exp(-305.5309 * x) + 0.044 * np.tanh(-(x - 0.1958) / 0.1088)
            - 0.1978 * np.tanh((x - 1.0571) / 0.0854) - 0.6875 * np.tanh((x + 0.0117) / 0.0529)
            - 0.0175 * np.tanh((x - 0.5692) / 0.0875))


def uc(y):
    return 3.4077 - 0.020269 * y + 0.5 * np.exp(-150 * y) - 0.9 * np.exp(-30 * (1 - y))


n = int(round((S_MAX - S_MIN) / STEP)) + 1
s = S_MIN + STEP * np.arange(n)
v = uc(Y0 + s * (Y1 - Y0)) - ua(X0 + s * (X1 - X0))
v = np.clip(v, 0.0, 5.0)
print(f"// {n} points, SOC {S_MIN} to {S_MAX} step {STEP}")
for i in range(0, n, 8):
    print("    " + " ".join(f"{x:.4f}," for x in v[i:i + 8]))
