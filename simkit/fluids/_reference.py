"""Published reference data for fluid validations (numbers only, with their sources).

GHIA: lid-driven cavity centreline profiles from Ghia, Ghia & Shin (1982), "High-Re solutions for
incompressible flow using the Navier-Stokes equations and a multigrid method", J. Comput. Phys.
48:387-411, Table I (u on the vertical line through the cavity centre, at heights y) and Table II
(v on the horizontal line through the centre, at positions x). Coordinates are in units of the
cavity side, velocities in units of the lid speed; the lid is at y = 1 moving in +x.
"""

from __future__ import annotations

import numpy as np

GHIA_Y = np.array(
    [
        1.0000,
        0.9766,
        0.9688,
        0.9609,
        0.9531,
        0.8516,
        0.7344,
        0.6172,
        0.5000,
        0.4531,
        0.2813,
        0.1719,
        0.1016,
        0.0703,
        0.0625,
        0.0547,
        0.0000,
    ]
)
"""Heights y (units of the cavity side) of Ghia et al.'s Table I, `(17,)`, 1 to 0."""
GHIA_X = np.array(
    [
        1.0000,
        0.9688,
        0.9609,
        0.9531,
        0.9453,
        0.9063,
        0.8594,
        0.8047,
        0.5000,
        0.2344,
        0.2266,
        0.1563,
        0.0938,
        0.0781,
        0.0703,
        0.0625,
        0.0000,
    ]
)
"""Positions x (units of the cavity side) of Ghia et al.'s Table II, `(17,)`, 1 to 0."""

GHIA_U = {  # Table I: u(y) / U_lid on x = 1/2
    100: [
        1.00000,
        0.84123,
        0.78871,
        0.73722,
        0.68717,
        0.23151,
        0.00332,
        -0.13641,
        -0.20581,
        -0.21090,
        -0.15662,
        -0.10150,
        -0.06434,
        -0.04775,
        -0.04192,
        -0.03717,
        0.00000,
    ],
    400: [
        1.00000,
        0.75837,
        0.68439,
        0.61756,
        0.55892,
        0.29093,
        0.16256,
        0.02135,
        -0.11477,
        -0.17119,
        -0.32726,
        -0.24299,
        -0.14612,
        -0.10338,
        -0.09266,
        -0.08186,
        0.00000,
    ],
    1000: [
        1.00000,
        0.65928,
        0.57492,
        0.51117,
        0.46604,
        0.33304,
        0.18719,
        0.05702,
        -0.06080,
        -0.10648,
        -0.27805,
        -0.38289,
        -0.29730,
        -0.22220,
        -0.20196,
        -0.18109,
        0.00000,
    ],
}
"""u(y) / U_lid on the vertical centreline x = 1/2 at `GHIA_Y`, by Reynolds number (100, 400,
1000): Ghia et al.'s Table I."""
GHIA_V = {  # Table II: v(x) / U_lid on y = 1/2
    100: [
        0.00000,
        -0.05906,
        -0.07391,
        -0.08864,
        -0.10313,
        -0.16914,
        -0.22445,
        -0.24533,
        0.05454,
        0.17527,
        0.17507,
        0.16077,
        0.12317,
        0.10890,
        0.10091,
        0.09233,
        0.00000,
    ],
    400: [
        0.00000,
        -0.12146,
        -0.15663,
        -0.19254,
        -0.22847,
        -0.23827,
        -0.44993,
        -0.38598,
        0.05186,
        0.30174,
        0.30203,
        0.28124,
        0.22965,
        0.20920,
        0.19713,
        0.18360,
        0.00000,
    ],
    1000: [
        0.00000,
        -0.21388,
        -0.27669,
        -0.33714,
        -0.39188,
        -0.51550,
        -0.42665,
        -0.31966,
        0.02526,
        0.32235,
        0.33075,
        0.37095,
        0.32627,
        0.30353,
        0.29012,
        0.27485,
        0.00000,
    ],
}
"""v(x) / U_lid on the horizontal centreline y = 1/2 at `GHIA_X`, by Reynolds number (100, 400,
1000): Ghia et al.'s Table II."""

# Cylinder wake: the Strouhal number St = f D / U of the shedding behind a circular cylinder at
# Re = 100 (unconfined) is 0.164-0.166 in experiments (Williamson 1996, Annu. Rev. Fluid Mech.
# 28:477, fig. 8 / eq. St = -3.3265/Re + 0.1816 + 1.6e-4 Re, giving 0.165). Confinement
# (blockage D/H) raises it: Schafer & Turek (1996), "Benchmark computations of laminar flow
# around a cylinder", benchmark 2D-2 (Re = U_mean D / nu = 100, channel height H = 4.1 D so the
# blockage is D/H = 0.24, cylinder centre 2 D from the inlet and 2 D above the lower wall,
# parabolic inflow of maximum speed 1.5 U_mean) gives St = 0.2950-0.3050, c_D,max 3.22-3.24,
# c_L,max 0.99-1.01.
STROUHAL_RE100_UNCONFINED = (0.160, 0.170)
