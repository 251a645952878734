"""Training: every configuration learns synthetic land cover, accuracy and speed side by side; RFE; the real
eo-learn patch (three clear 2015 scenes + DEM, LULC labels, spatial block split) beats the majority class."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from terracover.classes import CLASS_CODES
from terracover.dataset import feature_columns
from terracover.evaluate import evaluate, evaluate_model
from terracover.train import CONFIGS, TrainedModel, measure_throughput, train

log = logging.getLogger(__name__)

FEATURES = [
    f"{season}_{band}" for season in ("spring", "summer", "autumn") for band in ("B02", "B04", "B08", "B11", "ndvi")
] + ["dem", "slope", "aspect"]


def synthetic_table(
    n: int = 1800,
    seed: int = 0,
    *,
    classes: tuple[int, ...] = CLASS_CODES[:6],
    features: list[str] = FEATURES,
    year: int = 2023,
    separation: float = 1.0,
) -> pd.DataFrame:
    """A training table per docs/CONTRACTS.md whose features depend on the class (learnable, not trivially).

    Each class has its own mean on a random half of the features; noise has unit variance; ``separation``
    scales the class means. The split is by blocks of points (every 5th block is test), like a spatial split.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0, separation, (max(classes) + 1, len(features)))
    means *= rng.random((max(classes) + 1, len(features))) < 0.5
    y = rng.choice(classes, n)
    x = (means[y] + rng.normal(0, 1, (n, len(features)))).astype(np.float32)
    frame = pd.DataFrame(x, columns=features)
    block = np.arange(n) // 20
    meta = pd.DataFrame(
        {
            "point_id": [f"p{seed}-{i:05d}" for i in range(n)],
            "lon": rng.uniform(-0.04, 0.03, n),
            "lat": rng.uniform(39.94, 39.97, n),
            "year": year,
            "class_code": y.astype(np.int64),
            "tile": "30SYJ",
            "subtile": "r00c00",
            "row": rng.integers(0, 1098, n),
            "col": rng.integers(0, 1098, n),
            "split": np.where(block % 5 == 0, "test", "train"),
        }
    )
    return pd.concat([meta, frame], axis=1)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table()


@pytest.fixture(scope="module")
def trained_all(table: pd.DataFrame) -> dict[str, TrainedModel]:
    return {name: train(table, name, seed=1) for name in CONFIGS}


def test_every_config_learns_and_report_accuracy_and_speed(
    table: pd.DataFrame, trained_all: dict[str, TrainedModel]
) -> None:
    rows = []
    for name, model in trained_all.items():
        ev = evaluate_model(model.estimator, table, model.features)
        rows.append(
            (
                name,
                ev.overall_accuracy,
                ev.kappa,
                ev.macro_f1,
                model.throughput_pixels_per_s,
                ev.majority_accuracy,
            )
        )
        assert model.classes == sorted(table["class_code"].unique().tolist())
        assert model.features == FEATURES
        # no better than the majority class must fail: kappa > 0.2 on learnable data
        assert ev.kappa > 0.2, f"{name} learned nothing (kappa {ev.kappa:.3f})"
        assert ev.overall_accuracy > ev.majority_accuracy + 0.1, name
    base = next(r for r in rows if r[0] == "rf_full")
    lines = [
        "",
        f"{'config':8} {'accuracy':>9} {'kappa':>7} {'macroF1':>8} {'pixels/s':>11} {'x rf_full':>9}",
    ]
    lines += [f"{r[0]:8} {r[1]:9.3f} {r[2]:7.3f} {r[3]:8.3f} {r[4]:11,.0f} {r[4] / base[4]:9.1f}" for r in rows]
    lines.append(f"(majority-class accuracy {rows[0][5]:.3f}, {len(table)} points, {len(FEATURES)} features)")
    print("\n".join(lines))
    speed = {r[0]: r[4] for r in rows}
    assert speed["rf_fast"] > 1.5 * speed["rf_full"], "the fast forest must be clearly faster to serve"
    assert speed["mlp"] > 2 * speed["rf_full"], "the dense model must be much faster to serve"


def test_majority_class_predictor_fails_the_bar(table: pd.DataFrame) -> None:
    """The kappa bar above is meaningful: a constant predictor gets majority accuracy and kappa 0."""
    test = table[table["split"] == "test"]
    majority = int(test["class_code"].mode()[0])
    ev = evaluate(test["class_code"].to_numpy(), np.full(len(test), majority))
    assert ev.kappa == pytest.approx(0.0)
    assert ev.overall_accuracy == pytest.approx(ev.majority_accuracy)


def test_training_is_reproducible_with_a_seed(table: pd.DataFrame) -> None:
    a, b = train(table, "rf_fast", seed=7), train(table, "rf_fast", seed=7)
    x = table[FEATURES].to_numpy(np.float32)
    # same trees; only the parallel summation order of tree votes may differ in the last bit
    np.testing.assert_allclose(a.estimator.predict_proba(x), b.estimator.predict_proba(x), rtol=1e-12)


def test_rfe_selects_the_informative_features() -> None:
    """Half the features carry signal, half are noise: RFE down to 6 keeps mostly signal and is recorded."""
    rng = np.random.default_rng(3)
    t = synthetic_table(n=1200, seed=3, features=[f"f{i:02d}" for i in range(6)])
    for i in range(6):
        t[f"noise{i}"] = rng.normal(0, 1, len(t)).astype(np.float32)
    model = train(t, "rf_fast", seed=0, rfe_target=6)
    assert len(model.features) == 6 and model.rfe_target == 6
    assert len(model.candidate_features) == 12
    assert sum(f.startswith("f") for f in model.features) >= 4, model.features
    assert model.params()["rfe_target"] == 6
    assert model.estimator.n_features_in_ == 6


def test_bad_inputs_say_what_to_fix(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown model config"):
        train(table, "xgboost")
    with pytest.raises(ValueError, match="lacks feature columns"):
        train(table, "rf_fast", features=["summer_B04", "winter_B99"])
    with pytest.raises(ValueError, match="rfe_target"):
        train(table, "rf_fast", rfe_target=len(FEATURES))
    with pytest.raises(ValueError, match="fewer than two classes"):
        train(table.assign(class_code=3), "rf_fast")


def test_measure_throughput_scales_with_model_cost(trained_all: dict[str, TrainedModel]) -> None:
    small = measure_throughput(trained_all["rf_fast"].estimator, len(FEATURES), n_pixels=50_000)
    big = measure_throughput(trained_all["rf_full"].estimator, len(FEATURES), n_pixels=50_000)
    assert small > big > 0


def test_feature_columns_are_everything_but_the_contract_columns(table: pd.DataFrame) -> None:
    assert feature_columns(table) == FEATURES


# ---- real data -------------------------------------------------------------------------------------------
# eo-learn LULC codes -> our legend (1 cultivated, 2 forest, 3 grassland, 4 shrubland, 8 artificial)
EOLEARN_TO_LEGEND = {1: 6, 2: 7, 3: 2, 4: 3, 8: 1}
CLEAR_SCENES = ("2015-07-11", "2015-08-30", "2015-09-09")
BLOCK = 20  # px: 200 m blocks; every 4th block (checkerboard-ish) is held out


def eolearn_table(root: Path) -> pd.DataFrame:
    """One row per labelled pixel: 3 clear scenes x 13 bands + DEM as features, spatial block split."""
    import rasterio

    d = root / "eolearn_testeopatch" / "geotiff_derived"
    bands: dict[str, np.ndarray] = {}
    for date in CLEAR_SCENES:
        with rasterio.open(d / f"S2_L1C_{date}_13bands.tif") as src:
            for i in range(src.count):
                bands[f"{date}_b{i + 1:02d}"] = src.read(i + 1).astype(np.float32) / 10000
    with rasterio.open(d / "DEM.tif") as src:
        bands["dem"] = src.read(1).astype(np.float32)
    with rasterio.open(d / "LULC.tif") as src:
        lulc = src.read(1)
    rows, cols = np.indices(lulc.shape)
    keep = lulc > 0
    block_id = (rows // BLOCK) * 100 + cols // BLOCK
    test_blocks = ((rows // BLOCK) + 2 * (cols // BLOCK)) % 4 == 0
    frame = pd.DataFrame({name: a[keep] for name, a in bands.items()})
    meta = pd.DataFrame(
        {
            "point_id": [f"eo-{r}-{c}" for r, c in zip(rows[keep], cols[keep], strict=True)],
            "lon": 0.0,
            "lat": 0.0,
            "year": 2015,
            "class_code": np.vectorize(EOLEARN_TO_LEGEND.get)(lulc[keep]).astype(np.int64),
            "tile": "33TVM",
            "subtile": str(block_id[keep][0]),
            "row": rows[keep],
            "col": cols[keep],
            "split": np.where(test_blocks[keep], "test", "train"),
        }
    )
    return pd.concat([meta, frame], axis=1)


@pytest.mark.realdata
@pytest.mark.parametrize("config", ["rf_full", "lgbm"])
def test_real_eolearn_patch_beats_majority_class(shared_data: Path, config: str) -> None:
    table = eolearn_table(shared_data)
    model = train(table, config, seed=0)
    ev = evaluate_model(model.estimator, table, model.features)
    print(
        f"\neo-learn patch, {config}: accuracy {ev.overall_accuracy:.3f} (majority class "
        f"{ev.majority_accuracy:.3f}), kappa {ev.kappa:.3f}, macro F1 {ev.macro_f1:.3f}, "
        f"{model.throughput_pixels_per_s:,.0f} pixels/s; test {ev.n_test} px, train {model.n_train} px"
    )
    assert ev.kappa > 0.1
    assert ev.overall_accuracy > ev.majority_accuracy


def test_train_model_dag_offers_exactly_the_library_configs() -> None:
    """The DAG keeps its config names literal (parsing must not import scikit-learn); this keeps them equal."""
    import ast
    from pathlib import Path

    from terracover.train import DEFAULT_CONFIG

    dag = ast.parse((Path(__file__).resolve().parents[1] / "dags" / "train_model.py").read_text())
    names = next(
        ast.literal_eval(node.value)
        for node in ast.walk(dag)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CONFIGS" for t in node.targets)
    )
    assert sorted(names) == sorted(CONFIGS)
    assert names[0] == DEFAULT_CONFIG  # the DAG's default choice
