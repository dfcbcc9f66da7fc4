"""Neighbour thumbnails: the right neighbours, the right frames, the size cap,
and the report page."""

import base64

import numpy as np
from click.testing import CliRunner
from rascal_cli.main import cli
from test_train import TINY_TRAIN

from rascal_geom.analysis import analyze
from rascal_geom.neighbour_grid import neighbour_grid
from rascal_geom.report import render_analysis


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    fine = np.arange(n) % 6
    coarse = fine // 3
    x = rng.standard_normal((n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return x, coarse, fine, images


def test_neighbours_are_the_nearest_members_of_the_coarse_class():
    x, coarse, fine, images = _data()
    grid = neighbour_grid(
        x, coarse, fine, images.__getitem__, ["a", "b"], [f"v{i}" for i in range(6)], k=4
    )
    assert len(grid["rows"]) == 2 * 2 and grid["dropped_rows"] == 0
    for row in grid["rows"]:
        q = row["query"]["index"]
        members = np.flatnonzero((coarse == coarse[q]) & (np.arange(len(x)) != q))
        want = members[np.argsort(-(x[members] @ x[q]))[:4]]
        assert [nb["index"] for nb in row["neighbours"]] == want.tolist()
        assert [nb["same"] for nb in row["neighbours"]] == (fine[want] == fine[q]).tolist()
        png = base64.b64decode(row["query"]["png"])
        assert png.startswith(b"\x89PNG")
    assert grid["bytes"] == sum(
        len(r["query"]["png"]) + sum(len(n["png"]) for n in r["neighbours"]) for r in grid["rows"]
    )


def test_size_cap_drops_rows_and_says_so():
    x, coarse, fine, images = _data()
    full = neighbour_grid(
        x, coarse, fine, images.__getitem__, ["a", "b"], [str(i) for i in range(6)]
    )
    one_row = full["bytes"] // len(full["rows"])
    capped = neighbour_grid(
        x,
        coarse,
        fine,
        images.__getitem__,
        ["a", "b"],
        [str(i) for i in range(6)],
        max_bytes=one_row * 3 // 2,
    )
    # A row that would pass the cap is left out whole: never more than the cap.
    assert 1 <= len(capped["rows"]) < len(full["rows"])
    assert capped["dropped_rows"] == len(full["rows"]) - len(capped["rows"])
    assert capped["bytes"] <= capped["max_bytes"]


def test_analysis_of_a_run_shows_the_grid_and_an_npz_does_not(tmp_path):
    run = tmp_path / "run"
    train = [*TINY_TRAIN, "--loss", "supcon", "--out", str(run)]
    assert CliRunner().invoke(cli, train).exit_code == 0
    doc = analyze(run, umap=False, progress=False, device="cpu")
    grid = doc["neighbour_grid"]
    assert grid["rows"] and grid["coarse_level"] == "family" and grid["fine_level"] == "variant"
    html = render_analysis(doc, tmp_path / "a.html").read_text()
    section = html.split('<section id="neighbours">')[1].split("</section>")[0]
    n_images = sum(1 + len(r["neighbours"]) for r in grid["rows"])
    assert section.count('src="data:image/png;base64,') == n_images
    assert section.count('class="same"') + section.count('class="other"') == n_images - len(
        grid["rows"]
    )
    assert len(html.encode()) < 2_000_000  # the page stays small
    # A bare embedding file (no source recorded, unlike `rascal embed`'s) has no images: no grid.
    from rascal_geom.embeddings import load_embeddings

    emb = load_embeddings(run / "last.pt", device="cpu", progress=False)
    np.savez(
        tmp_path / "bare.npz",
        embeddings=emb.embeddings,
        **{f"labels_{lvl}": y for lvl, y in emb.labels.items()},
    )
    doc = analyze(tmp_path / "bare.npz", umap=False, progress=False)
    assert doc["neighbour_grid"] is None
    assert '<section id="neighbours">' not in render_analysis(doc, tmp_path / "b.html").read_text()
