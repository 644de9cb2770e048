import json
import math
import statistics

import pytest

from codi_sae.errors import InputError
from codi_sae.positions import position_specialisation, positions_table_html, write_positions

LAYERS, POSITIONS = range(12), range(6)


def metrics_all(value, layers=LAYERS, positions=POSITIONS) -> dict:
    """``metrics_all.json`` whose every metric at (layer, position) is ``value(layer, position, metric)``."""
    names = ("explained_variance", "explained_variance_std", "fvu", "feature_death_rate")
    return {
        "results": {str(layer): {str(p): {m: value(layer, p, m) for m in names} for p in positions}
                    for layer in layers},
        "baselines": {str(layer): {str(p): {} for p in positions} for layer in layers},
    }


def probe(value, layers=LAYERS, positions=POSITIONS) -> dict:
    return {"sites": {str(layer): {str(p): {"models": {"codes": {"auroc": {"mean": value(layer, p), "std": 0.01}}}}
                                   for p in positions} for layer in layers}}


def odd_better(layer, p, metric):
    """Odd positions better on every metric at every layer, by a layer-dependent margin."""
    gap = 0.01 * (layer + 1) * (p % 2)
    return 0.2 - gap if metric in ("fvu", "feature_death_rate") else 0.8 + gap


def noisy(layer, p, metric):
    """Values without ties (tied differences make scipy's Wilcoxon permute: slower)."""
    return abs(math.sin(layer * 12.9898 + p * 78.233 + len(metric)))


def test_table_values_are_the_means_of_the_site_metrics(tmp_path):
    data, pr = metrics_all(noisy), probe(lambda layer, p: noisy(layer, p, "auroc"))
    (tmp_path / "m.json").write_text(json.dumps(data))
    (tmp_path / "p.json").write_text(json.dumps(pr))
    result = write_positions(tmp_path / "m.json", tmp_path / "p.json", tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert result["positions"] == {"odd": [1, 3, 5], "even": [0, 2, 4]}
    assert set(result["metrics"]) == {"explained_variance", "explained_variance_std", "fvu", "feature_death_rate",
                                      "probe_auroc_codes"}
    for name, m in result["metrics"].items():
        for layer in LAYERS:
            def site(p):
                if name == "probe_auroc_codes":
                    return pr["sites"][str(layer)][str(p)]["models"]["codes"]["auroc"]["mean"]
                return data["results"][str(layer)][str(p)][name]

            row = m["per_layer"][str(layer)]
            odd, even = statistics.mean(site(p) for p in (1, 3, 5)), statistics.mean(site(p) for p in (0, 2, 4))
            assert row["odd"] == pytest.approx(odd) and row["even"] == pytest.approx(even)
            assert row["difference"] == pytest.approx(odd - even)
        assert m["n_layers"] == 12 and m["test"] == "Wilcoxon signed-rank, two-sided, paired by layer"
    page = positions_table_html(result)
    row = result["metrics"]["fvu"]["per_layer"]["3"]
    assert f"<td>3</td><td>{row['odd']:.4f}</td><td>{row['even']:.4f}</td><td>{row['difference']:+.4f}</td>" in page


def test_odd_clearly_better_everywhere_supports_the_claim():
    result = position_specialisation(metrics_all(odd_better), probe(lambda layer, p: 0.6 + 0.02 * (p % 2)))
    for name, m in result["metrics"].items():
        assert m["odd_better_layers"] == 12 and m["p_value"] < 0.05 and m["note"] is None, name
    fvu = result["metrics"]["fvu"]
    assert fvu["verdict"] == ("Odd positions are better (lower FVU) at 12 of 12 layers; Wilcoxon p = 0.000488: "
                              "the data support the seed's claim at the 5% level.")
    assert fvu["per_layer"]["0"]["difference"] == pytest.approx(-0.01)
    assert "not a reconstruction metric" in result["metrics"]["probe_auroc_codes"]["verdict"]
    assert fvu["favours"] == "odd" and result["caveats"] == []


def test_caveats_name_sites_that_learned_little_and_the_seeds_ev_disagreeing():
    """The seed's EV favours odd positions while FVU favours even ones, and at layer 11 every SAE
    is worse than the mean: the result says both, on the page too."""
    def value(layer, p, metric):
        if metric == "fvu":
            return 1.01 if layer == 11 else 0.5 - 0.01 * (layer + 1) * ((p + 1) % 2)
        return odd_better(layer, p, metric)

    result = position_specialisation(metrics_all(value), None)
    assert result["metrics"]["explained_variance"]["favours"] == "odd"
    assert result["metrics"]["fvu"]["favours"] == "even"
    assert result["caveats"] == [
        "At 6 of 72 sites the SAE learned little beyond the per-dimension mean (FVU above 0.99, or no variance; "
        "see the warnings of metrics_all.json): there, the reconstruction metrics compare SAEs that did not learn "
        "the data.",
        "The seed's explained variance finds odd positions better, the standard one (1 - FVU) even positions "
        "better: the seed's definition counts the spread between the per-dimension means as explained. Read FVU."]
    assert "<strong>Caveat:</strong> At 6 of 72 sites" in positions_table_html(result)


@pytest.mark.parametrize("n_layers", [5, 6])
def test_too_few_layers_for_the_test_to_reach_5_percent_are_said(n_layers):
    fvu = position_specialisation(metrics_all(odd_better, layers=range(n_layers)), None)["metrics"]["fvu"]
    assert fvu["odd_better_layers"] == n_layers and fvu["p_value"] == pytest.approx(2 / 2 ** n_layers)
    if n_layers == 5:  # the smallest p of 5 pairs is 0.0625
        assert fvu["favours"] is None and fvu["verdict"] == (
            "Odd positions are better (lower FVU) at 5 of 5 layers; Wilcoxon p = 0.0625: with 5 layers the test "
            "cannot reach the 5% level: its smallest possible p is 0.0625: the data cannot test the seed's claim.")
    else:
        assert fvu["favours"] == "odd" and fvu["verdict"].endswith("the data support the seed's claim at the 5% level.")


def test_even_clearly_better_contradicts_the_claim():
    result = position_specialisation(metrics_all(lambda layer, p, m: odd_better(layer, p + 1, m)), None)
    ev = result["metrics"]["explained_variance"]
    assert ev["odd_better_layers"] == 0 and ev["p_value"] < 0.05
    assert ev["verdict"].endswith("the data contradict the seed's claim: even positions are better at the 5% level.")


def test_all_equal_gives_no_p_value_and_a_note():
    result = position_specialisation(metrics_all(lambda layer, p, m: 0.5), None)
    for m in result["metrics"].values():
        assert m["p_value"] is None and m["n_layers"] == 12 and m["odd_better_layers"] == 0
        assert m["note"] == "every per-layer difference is zero"
        assert "no Wilcoxon test (every per-layer difference is zero)" in m["verdict"]
    assert result["metrics"]["fvu"]["verdict"].endswith("the data cannot test the seed's claim.")
    assert result["metrics"]["feature_death_rate"]["verdict"].endswith("(every per-layer difference is zero).")


def test_none_metrics_are_skipped():
    def value(layer, p, metric):
        if p == 5 or (layer == 0 and p % 2 == 0):  # position 5 constant; layer 0 has no even value
            return None
        return odd_better(layer, p, metric)

    result = position_specialisation(metrics_all(value), None)
    fvu = result["metrics"]["fvu"]
    assert fvu["per_layer"]["0"] == {"odd": 0.2 - 0.01, "even": None, "difference": None}
    assert fvu["per_layer"]["4"]["odd"] == pytest.approx(0.2 - 0.05)  # the mean of positions 1 and 3
    assert fvu["n_layers"] == 11 and fvu["odd_better_layers"] == 11 and fvu["p_value"] < 0.05


def test_probe_is_optional_and_may_lack_sites(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(metrics_all(noisy)))
    (tmp_path / "d.json").write_text(json.dumps({"synthetic": True, "model": "m", "dataset": "d", "source": "s"}))
    result = write_positions(tmp_path / "m.json", None, tmp_path / "out.json", tmp_path / "d.json", tmp_path / "p.html")
    assert "probe_auroc_codes" not in result["metrics"]
    page = (tmp_path / "p.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "SYNTHETIC DEMO DATA" in page and positions_table_html(result) in page
    partial = probe(lambda layer, p: 0.7, layers=[0])
    m = position_specialisation(metrics_all(noisy), partial)["metrics"]["probe_auroc_codes"]
    assert m["per_layer"]["1"] == {"odd": None, "even": None, "difference": None}
    assert m["n_layers"] == 1 and m["p_value"] is None
    assert m["note"] == "fewer than 2 layers have both an odd and an even mean"


def test_a_probe_of_one_class_says_why_it_has_no_value():
    one_class = probe(lambda layer, p: None)
    note = "the model is right on 0 of 60 problems: cross-validation needs at least 2 of each"
    for by_pos in one_class["sites"].values():
        for site in by_pos.values():
            site["note"] = note
    m = position_specialisation(metrics_all(noisy), one_class)["metrics"]["probe_auroc_codes"]
    assert m["n_layers"] == 0 and m["p_value"] is None
    assert m["verdict"] == f"No even/odd comparison: no site has a value: {note}."
    m = position_specialisation(metrics_all(lambda layer, p, metric: None), None)["metrics"]["fvu"]
    assert m["verdict"] == "No even/odd comparison: no site has a value."


def test_one_position_has_no_comparison():
    result = position_specialisation(metrics_all(noisy, positions=[0]), probe(lambda layer, p: 0.7, positions=[0]))
    assert result["positions"] == {"odd": [], "even": [0]}
    for m in result["metrics"].values():
        assert m["n_layers"] == 0 and m["p_value"] is None
        assert m["verdict"] == "No even/odd comparison: the data have positions [0] only."
    assert "none" in positions_table_html(result)


def test_bad_input_names_the_file(tmp_path):
    data = metrics_all(noisy)
    del data["results"]["2"]["4"]["fvu"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"m\.json: results -> 2 -> 4 has no 'fvu'"):
        write_positions(tmp_path / "m.json", None, tmp_path / "out.json")
    (tmp_path / "m.json").write_text(json.dumps(metrics_all(noisy)))
    (tmp_path / "p.json").write_text(json.dumps({"sites": {"0": {"1": {"models": {}}}}}))
    with pytest.raises(InputError, match=r"p\.json: sites -> 0 -> 1 has no models -> codes -> auroc -> mean"):
        write_positions(tmp_path / "m.json", tmp_path / "p.json", tmp_path / "out.json")


def test_html_escapes_text():
    result = position_specialisation(metrics_all(odd_better), None)
    result["claim"] = "<b>odd</b> & even"
    page = positions_table_html(result)
    assert "&lt;b&gt;odd&lt;/b&gt; &amp; even" in page and "<b>" not in page


def test_plot_draws_each_metrics_odd_and_even_means_and_verdict(tmp_path, monkeypatch):
    from codi_sae import plots

    data = metrics_all(noisy, layers=range(4))
    data["results"]["2"]["1"]["fvu"] = data["results"]["2"]["3"]["fvu"] = data["results"]["2"]["5"]["fvu"] = None
    (tmp_path / "m.json").write_text(json.dumps(data))
    (tmp_path / "d.json").write_text(json.dumps({"model": "m", "synthetic": False}))
    result = write_positions(tmp_path / "m.json", None, tmp_path / "positions.json")
    result["caveats"] = ["a caveat the plot must show"]
    (tmp_path / "positions.json").write_text(json.dumps(result))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, png, svg: figures.append(fig))
    plots.plot_positions(tmp_path / "positions.json", tmp_path / "d.json", tmp_path / "p.png", tmp_path / "p.svg")
    fig = figures[0]
    try:
        drawn = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in drawn] == list(result["metrics"])
        for ax, m in zip(drawn, result["metrics"].values()):
            lines = ax.get_lines()
            assert [line.get_label() for line in lines] == ["odd positions", "even positions"]
            for line, side in zip(lines, ("odd", "even")):
                assert list(line.get_xdata()) == [0, 1, 2, 3]
                expected = [math.nan if m["per_layer"][str(layer)][side] is None else m["per_layer"][str(layer)][side]
                            for layer in range(4)]
                assert line.get_ydata() == pytest.approx(expected, nan_ok=True)
            assert m["verdict"] in [text.get_text().replace("\n", " ") for text in ax.texts]
        assert math.isnan(drawn[list(result["metrics"]).index("fvu")].get_lines()[0].get_ydata()[2])
        texts = [text.get_text() for text in fig.findobj(plots.plt.Text)]
        assert any(text.endswith("\nCaveat: a caveat the plot must show") for text in texts)
    finally:
        plots.plt.close(fig)
