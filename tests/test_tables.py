"""Report tables: each cell under its own header, the sweet spot's row marked, warnings shown."""

import re

from codi_sae.tables import sites_page, sweep_page


def table(page: str, which: int = -1) -> list[dict]:
    """The rows of the page's ``which``-th table, each as {header: cell text}, with its row class."""
    text = re.findall(r"<table>.*?</table>", page)[which]
    headers = re.findall(r"<th>(.*?)</th>", text)
    return [{"class": cls, **dict(zip(headers, re.findall(r"<td>(.*?)</td>", row)))}
            for cls, row in re.findall(r"<tr class='(.*?)'>(.*?)</tr>", text)]


def sae_metrics(i: int) -> dict:
    return {"explained_variance": 0.9 + i / 1000, "explained_variance_std": 0.5 + i / 100, "fvu": 0.5 - i / 100,
            "reconstruction_loss": 0.012, "cosine_similarity": 0.97, "feature_death_rate": 0.025,
            "num_dead_features": 13, "l0_mean": 150.0}


def baselines(i: int) -> dict:
    return {"pca_explained_variance": 0.95, "pca_explained_variance_std": 0.7, "pca_fvu": 0.3,
            "mean_only_explained_variance": 0.96, "mean_only_fvu": 1.01, "fvu_minus_pca_fvu": 0.2 - i / 100,
            "top_dimension_share": 0.25, "warning": "FVU above 0.99" if i == 3 else None}


def test_sites_page_puts_each_value_under_its_header():
    sites = [(layer, p) for layer in range(2) for p in range(2)]
    doc = {"config": {"latent_dim": 512, "k": 150, "recipe": "topk"}, "dataset": {"synthetic": False},
           "n_sites": 4, "warnings": ["one site learned nothing"], "statistics": {},
           "results": {str(layer): {str(p): sae_metrics(2 * layer + p) for p in range(2)} for layer in range(2)},
           "baselines": {str(layer): {str(p): baselines(2 * layer + p) for p in range(2)} for layer in range(2)}}
    page = sites_page(doc)
    rows = table(page)
    assert [(r["Layer"], r["Position"]) for r in rows] == [(str(layer), str(p)) for layer, p in sites]
    assert rows[1] == {"class": "", "Layer": "0", "Position": "1", "EV (seed)": "0.9010", "PCA-K EV (seed)": "0.9500",
                       "Mean-only EV (seed)": "0.9600", "EV (std)": "0.5100", "PCA-K EV (std)": "0.7000",
                       "FVU": "0.4900", "PCA-K FVU": "0.3000", "Mean-only FVU": "1.0100", "FVU - PCA-K FVU": "+0.1900",
                       "MSE": "0.012", "Cosine": "0.9700", "Death rate": "2.5%", "Dead": "13",
                       "Top dim. share": "25.0%", "L0": "150.0", "Warning": ""}
    assert rows[3]["Warning"] == "FVU above 0.99"
    assert "<p class='warning'>WARNING one site learned nothing</p>" in page
    assert "d=512, K=150, topk recipe, at every site" in page


def test_sweep_page_marks_the_sweet_spot_row():
    configs = [{"rank": rank, "recipe": "seed", "d": d, "k": k, "sparsity": k / d, "epochs": 25,
                "train_time_sec": 1.5, **sae_metrics(rank), **baselines(rank)}
               for rank, (d, k) in enumerate([(512, 150), (256, 50), (192, 20)], start=1)]
    summary = {"sweet_spot": {"d": 512, "k": 150, "recipe": "seed"}, "warnings": [], "configs": configs,
               "rationale": "the smallest K/d above the threshold", "selection_rule": {"rule": "EV >= 0.9"},
               "sites": [{"position": 3, "layer": 8}]}
    page = sweep_page(summary, {"synthetic": True})
    rows = table(page)
    assert "(d, K) sweep at position 3, layer 8" in page and "Sweet spot: d=512, K=150, seed recipe" in page
    assert [(r["class"], r["Rank"], r["d"], r["K"]) for r in rows] == [
        ("chosen", "1", "512", "150"), ("", "2", "256", "50"), ("", "3", "192", "20")]
    assert rows[1]["K/d"] == "19.5%" and rows[1]["FVU"] == "0.4800" and rows[1]["PCA-K FVU"] == "0.3000"
    assert rows[2]["Warning"] == "FVU above 0.99" and rows[0]["Train s"] == "1.5"
