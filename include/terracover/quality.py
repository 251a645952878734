"""The Great Expectations gate every training table must pass before a model is trained on it.

Two batches are validated: the table itself (schema, features present at most points, value ranges, unique
points, valid labels and splits) and its per-class counts (every class present, each with a minimum count), so the
whole gate is GX expectations with one readable report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from terracover.classes import CLASS_BY_CODE, CLASS_CODES
from terracover.dataset import ACCURACY_SPLIT, META
from terracover.features import parse_feature
from terracover.observation import quality_columns

# Ranges a feature value may take in a stack. Wider than the normalisation ranges: these catch broken data
# (wrong scale, sign, units), not unusual land.
_RANGES = {
    "band": (0.0, 2.0),
    "index": (-10.0, 10.0),
    "dem": (-500.0, 9000.0),
    "slope": (0.0, 90.0),
    "aspect": (0.0, 360.0),
}
_UNIT_INDICES = ("ndvi", "ndwi", "mndwi", "ndbi", "ndyi", "ndre", "moisture", "ri")


def feature_range(name: str) -> tuple[float, float]:
    spec = parse_feature(name)
    if spec.kind == "terrain":
        return _RANGES[spec.source]
    if spec.kind == "index" and spec.source in _UNIT_INDICES:
        return -1.0, 1.0
    if spec.source == "cri1":  # 1/B02 - 1/B03 on reflectance: tens over dark, green vegetation
        return -500.0, 500.0
    if spec.source in ("AOT", "WVP"):
        return 0.0, 70.0
    return _RANGES[spec.kind]


@dataclass(frozen=True)
class QualityReport:
    passed: bool
    failures: list[str]
    evaluated: int

    def markdown(self) -> str:
        head = f"Great Expectations: {self.evaluated} expectations, {len(self.failures)} failed"
        return "\n".join([head, *(f"- {f}" for f in self.failures)]) if self.failures else head + " (passed)"


class QualityGateError(ValueError):
    """The table failed the gate; ``report`` says which expectations and with what observed values."""

    def __init__(self, report: QualityReport):
        super().__init__(report.markdown())
        self.report = report


# Rows keep features that could be neither observed nor filled (NaN-aware models learn from them); a feature
# missing at more than this share of the points is broken data, not clouds.
MIN_PRESENT = 0.5


def _expectations(features: list[str], qa: list[str], min_count: int) -> tuple[list[Any], list[Any]]:
    import great_expectations as gx

    e = gx.expectations
    table: list[Any] = [e.ExpectTableColumnsToMatchSet(column_set=[*META, *features, *qa], exact_match=True)]
    table += [e.ExpectColumnValuesToNotBeNull(column=c) for c in META]
    table += [e.ExpectColumnValuesToNotBeNull(column=c, mostly=MIN_PRESENT) for c in features]
    for f in features:
        lo, hi = feature_range(f)
        table.append(e.ExpectColumnValuesToBeBetween(column=f, min_value=lo, max_value=hi))
    table += [
        e.ExpectColumnValuesToBeUnique(column="point_id"),
        e.ExpectCompoundColumnsToBeUnique(column_list=["lon", "lat"]),
        e.ExpectColumnValuesToBeInSet(column="class_code", value_set=list(CLASS_CODES)),
        e.ExpectColumnDistinctValuesToContainSet(column="class_code", value_set=list(CLASS_CODES)),
        e.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test", ACCURACY_SPLIT]),
        e.ExpectColumnValuesToBeBetween(column="lon", min_value=-180, max_value=180),
        e.ExpectColumnValuesToBeBetween(column="lat", min_value=-90, max_value=90),
    ]
    counts: list[Any] = [e.ExpectColumnValuesToBeBetween(column="count", min_value=min_count)]
    return table, counts


def cfg_type(res: Any) -> str:
    """The expectation type of one validation result."""
    return str(res.expectation_config.type) if res.expectation_config else "?"


def _describe(res: Any) -> str:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    r = res.result or {}
    observed = r.get("observed_value")
    sample = r.get("partial_unexpected_list") or []
    detail = f"observed {observed}" if observed is not None else f"{r.get('unexpected_count', '?')} unexpected"
    if sample:
        detail += f", e.g. {sample[:5]}"
    return f"{cfg.type} {kwargs}: {detail}"


def validate_training_table(df: pd.DataFrame, min_samples_per_class: int) -> QualityReport:
    """Run the suite on a table (and its class counts) in an ephemeral GX context."""
    import great_expectations as gx

    qa = quality_columns(df.columns)
    features = [c for c in df.columns if c not in META and c not in qa]
    counts = (
        df["class_code"]
        .value_counts()
        .reindex(CLASS_CODES, fill_value=0)
        .rename_axis("class_code")
        .reset_index(name="count")
    )
    counts["class_name"] = counts["class_code"].map(lambda c: CLASS_BY_CODE[int(c)].name)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("terracover")
    table_exp, count_exp = _expectations(features, qa, min_samples_per_class)
    failures: list[str] = []
    evaluated = 0
    for name, frame, exps in (("training_table", df, table_exp), ("class_counts", counts, count_exp)):
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=exps))
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        result = vd.run(batch_parameters={"dataframe": frame})
        evaluated += len(result.results)
        for res in result.results:
            if not res.success:
                msg = _describe(res)
                if cfg_type(res) == "expect_compound_columns_to_be_unique":
                    dup = df[df.duplicated(["lon", "lat"], keep=False)]
                    msg = (
                        f"{len(dup)} points share their lon/lat with another point (e.g. "
                        f"{', '.join(dup.point_id.astype(str).head(4))}): merge or drop the duplicate labels"
                    )
                elif cfg_type(res) == "expect_column_distinct_values_to_contain_set":
                    absent = counts[counts["count"] == 0].class_name.tolist()
                    msg = f"classes missing from the table: {', '.join(absent)}"
                elif name == "class_counts":
                    short = counts[counts["count"] < min_samples_per_class]
                    msg = f"classes below {min_samples_per_class} samples: " + ", ".join(
                        f"{n} ({c})" for n, c in zip(short.class_name, short["count"], strict=True)
                    )
                failures.append(msg)
    return QualityReport(not failures, failures, evaluated)


def gate(df: pd.DataFrame, min_samples_per_class: int) -> QualityReport:
    """Validate and raise :class:`QualityGateError` (with the readable report) if anything failed."""
    report = validate_training_table(df, min_samples_per_class)
    if not report.passed:
        raise QualityGateError(report)
    return report
