"""The documentation site builds with `mkdocs build --strict` (a broken link, a docstring whose
arguments do not match the signature, a public function without a docstring or a README section
the pages include that is gone all fail it), and its key pages hold what they should.

The notebooks are rendered as stored (unexecuted) to keep this quick; `./dev.sh docs` executes
them. The site goes to a temporary folder.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

import _background  # noqa: E402
import _hooks  # noqa: E402 - docs/_hooks.py, the site's MkDocs hooks

API_PAGES = {
    "ode": ["simkit.ode.solve_ensemble", "simkit.ode.ODEStepper", "simkit.ode.solve_stiff"],
    "fit": ["simkit.fit.fit", "simkit.fit.fit_batch", "simkit.fit.FitResult"],
    "run": ["simkit.run.run", "simkit.run.simulate", "simkit.run.AbstractStepper"],
    "io": ["simkit.io.FrameStore", "simkit.io.H5MDStore", "simkit.io.FieldStore"],
    "ensemble": ["simkit.ensemble.sharded_vmap", "simkit.ensemble.sharded_call"],
    "md": ["simkit.md.VelocityVerlet", "simkit.md.LennardJones", "simkit.md.build_neighbor_list"],
    "fluids": ["simkit.fluids.lattice_units", "simkit.fluids.energy_spectrum"],
    "lbm": ["simkit.fluids.lbm.LBMStepper", "simkit.fluids.lbm.BGK", "simkit.fluids.lbm.D2Q9"],
    "spectral": ["simkit.fluids.spectral.NavierStokes2D", "simkit.fluids.spectral.energy"],
}


@pytest.fixture(scope="module")
def site() -> Path:
    # built by a subprocess started at collection (tests/_background.py)
    proc = _background.result("docs")
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return _background.site_dir()


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text()


@pytest.mark.parametrize("name", API_PAGES)
def test_api_page_lists_the_public_names(site, name):
    html = page(site, f"api/{name}")
    for qualname in API_PAGES[name]:
        assert f'id="{qualname}"' in html, f"{qualname} missing from api/{name}"


def test_content_pages(site):
    assert "./dev.sh demo" in page(site, "getting-started")
    assert "h5netcdf" in page(site, "getting-started")
    driver = page(site, "driver")
    assert "SIGKILL" in driver and "two writers" in driver and "exit code" in driver.lower()
    bench = page(site, "benchmarks")
    assert "bench_lbm.py" in bench and "fit.json" in bench
    gallery = page(site, "problems")
    for script in (ROOT / "problems").glob("*.py"):
        if not script.name.startswith("_"):
            assert f"simkit run {script.stem}" in gallery, script.stem
    assert "--help" in gallery and "Ghia" in gallery


def test_notebooks_are_pages(site):
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        html = page(site, f"notebooks/{nb.stem}")
        assert "jp-CodeCell" in html, nb.name


def test_readme_section_ends_at_the_next_heading_of_its_level():
    text = "# t\n## A\na\n### A.1\n```\n## not a heading\n```\nb\n## B\nc\n"
    assert _hooks.readme_section("##", "A", text) == "a\n### A.1\n```\n## not a heading\n```\nb\n"
    assert _hooks.readme_section("##", "B", text) == "c\n"
    assert _hooks.readme_section("##", "A", text, top=True) == "a\n"
    with pytest.raises(ValueError, match="no section"):
        _hooks.readme_section("##", "C", text)
