"""Every URI, bucket, threshold and limit of terracover, in one pydantic-settings class.

Defaults are embedded: with no environment at all, everything lives under ``TERRACOVER_HOME`` (default
``./.terracover``) on the local disk, MLflow uses SQLite and the catalog is file-backed, so one machine runs the
whole lifecycle offline. Production overrides these with ``TERRACOVER_*`` environment variables (or a ``.env``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from terracover.mgrs import check_subtile_size, normalise_tile


class Settings(BaseSettings):
    """Runtime configuration. Read once per process through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="TERRACOVER_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------------------------------
    home: Path = Field(default=Path(".terracover"), description="Root of every embedded default.")
    store_uri: str = Field(default="", description="Object store root: a folder or s3://bucket/prefix.")
    catalog_uri: str = Field(
        default="", description="Catalog: a folder (embedded) or postgresql://... (pgSTAC through pypgstac)."
    )
    mlflow_tracking_uri: str = Field(default="", description="MLflow tracking server or sqlite:/// URI.")
    mlflow_ui_url: str = Field(
        default="", description="Where people open MLflow (default: the tracking URI when it is an http server)."
    )

    # --- S3-compatible object storage --------------------------------------------------------------
    s3_endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint (MinIO, Garage, moto).")
    s3_public_endpoint_url: str | None = Field(
        default=None, description="Endpoint presigned URLs are signed for (reachable from outside the cluster)."
    )
    s3_region: str = "us-east-1"
    presign_expiry_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # --- data sources ------------------------------------------------------------------------------
    scene_source: Literal["simulator", "stac", "sentinelhub"] = "simulator"
    stac_api_url: str = "https://earth-search.aws.element84.com/v1"
    s2_collection: str = "sentinel-2-l2a"
    max_cloud_cover: float = Field(default=80.0, ge=0, le=100)
    scene_access: Literal["auto", "in-place", "copy"] = Field(
        default="auto",
        description="in-place: catalog the source's COG hrefs and read windows where they are; copy: copy the"
        " region's bands into the store; auto: in-place for sources of public COGs (stac), copy otherwise.",
    )
    gap_fill: Literal["on", "linear", "off"] = Field(
        default="on",
        description="Seasons without a clear observation: 'on' interpolates linearly in time, then falls back to"
        " the other end of the year (cyclic); 'linear' interpolates only; 'off' leaves them NaN"
        " (terracover.gapfill).",
    )
    dem_source: Literal["simulator", "cop-dem-glo-30", "aster-gdem"] = "simulator"
    dem_stac_api_url: str = "https://earth-search.aws.element84.com/v1"
    dem_collection: str = "cop-dem-glo-30"
    cmr_stac_url: str = "https://cmr.earthdata.nasa.gov/stac/LPCLOUD"
    sentinelhub_base_url: str = "https://sh.dataspace.copernicus.eu"
    sentinelhub_client_id: str | None = None
    sentinelhub_client_secret: SecretStr | None = None

    # --- grid and region ---------------------------------------------------------------------------
    subtile_size: int = Field(default=1098, description="Subtile edge in 10 m pixels; must divide 10980.")
    stack_max_out_of_range: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest share of a season's valid pixels in one optical band with non-physical reflectance"
        " (terracover.stackguard) before build_stack fails: a wrong L2A offset stops there.",
    )
    region_bbox: tuple[float, float, float, float] = Field(
        default=(-0.045, 39.94, 0.035, 39.975),
        description="lon/lat box (west, south, east, north) of the region kept current. The default straddles"
        " the UTM 30/31 boundary near Castello, so the demo exercises multi-tile, multi-zone work.",
    )
    tiles: list[str] = Field(
        default_factory=list, description="MGRS tiles to keep; empty = the tiles the region touches."
    )
    years: list[int] = Field(default_factory=lambda: [2023])

    # --- fan-out and parallelism (continental runs) ------------------------------------------------
    composite_batch_subtiles: int = Field(
        default=0, ge=0, description="Subtiles per build_composites task; 0 = one task per tile-year."
    )
    batch_workers: int = Field(
        default=0, ge=0, description="Threads per task for a batch's subtiles or scenes; 0 = the pod's CPUs."
    )

    # --- training and promotion --------------------------------------------------------------------
    primary_metric: Literal["kappa", "overall_accuracy", "macro_f1"] = "kappa"
    min_margin: float = Field(default=0.0, ge=0.0, description="Challenger must beat champion by this much.")
    min_samples_per_class: int = Field(default=5, ge=1)
    promotion_lock_wait_s: float = Field(
        default=600.0, gt=0, description="How long a promotion waits for another promotion of the same year."
    )
    promotion_lock_stale_s: float = Field(
        default=900.0, gt=0, description="A promotion lock older than this was left by a crash and is broken."
    )
    labels_poll_s: float = Field(default=60.0, gt=0, description="How often Airflow's labels watcher polls labels/.")
    random_seed: int = 42

    # --- serving -----------------------------------------------------------------------------------
    serving_url: str = "http://127.0.0.1:3000"
    reload_token: SecretStr = SecretStr("terracover-dev-token")
    max_aoi_km2: float = Field(default=500.0, gt=0)
    max_aoi_bbox_km2: float = Field(
        default=2000.0, gt=0, description="Cap on an AOI's bounding box (the answer's raster covers it)."
    )
    max_aoi_vertices: int = Field(default=20_000, ge=4, description="Cap on the positions of an AOI's GeoJSON.")
    max_aoi_features: int = Field(default=1000, ge=1, description="Cap on features/geometries of one AOI.")
    max_request_bytes: int = Field(
        default=8 * 2**20, ge=1024, description="Cap on a request body's size; larger bodies get a 413."
    )
    model_refresh_s: int = Field(default=60, ge=5, description="How often each worker re-reads model aliases.")
    serving_workers: int = Field(default=1, ge=1, description="BentoML worker processes of the service.")
    drift_sample_px: int = Field(default=5000, ge=100, description="Pixels per request sampled for drift.")
    shadow_sample_px: int = Field(default=50_000, ge=100, description="Pixels per request the shadow classifies.")

    # --- monitoring --------------------------------------------------------------------------------
    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9093"
    confidence_threshold: float = Field(default=0.6, gt=0, lt=1, description="TerracoverLowConfidence fires below.")
    confidence_alert_for: str = Field(default="1h", pattern=r"^\d+[smhd]$", description="...for this long.")
    confidence_window: str = Field(default="24h", pattern=r"^\d+[smhd]$", description="Mean confidence window.")
    confidence_min_requests: int = Field(default=1, ge=1, description="Requests in the window before alerting.")
    coverage_threshold: float = Field(
        default=0.95, gt=0, le=1, description="TerracoverLowCoverage fires when the mean classified share is below."
    )
    coverage_alert_for: str = Field(default="1h", pattern=r"^\d+[smhd]$", description="...for this long.")
    error_ratio_threshold: float = Field(default=0.05, gt=0, lt=1)
    drift_psi_threshold: float = Field(default=0.25, gt=0)
    alert_poll_s: float = Field(default=30.0, gt=0, description="How often Airflow's alert sensor polls.")
    rule_interval: str = Field(default="1m", pattern=r"^\d+[smhd]$", description="Rule evaluation interval.")

    @field_validator("subtile_size")
    @classmethod
    def _divides_tile(cls, v: int) -> int:
        return check_subtile_size(v)

    @field_validator("tiles")
    @classmethod
    def _upper_tiles(cls, v: list[str]) -> list[str]:
        return [normalise_tile(t) for t in v]

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        """Fill the URIs left empty with folders under ``home`` (the embedded, one-machine defaults)."""
        home = self.home.expanduser().resolve()
        self.home = home
        if not self.store_uri:
            self.store_uri = str(home / "store")
        if not self.catalog_uri:
            self.catalog_uri = str(home / "catalog")
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
        return self

    @property
    def store_is_s3(self) -> bool:
        return self.store_uri.startswith("s3://")

    @property
    def catalog_is_pgstac(self) -> bool:
        return self.catalog_uri.startswith(("postgresql://", "postgres://"))


def redact_uri(uri: str, keep_user: bool = True) -> str:
    """``uri`` without the password of its userinfo (``postgresql://user:***@host/db``), or without the userinfo
    at all (``keep_user=False``, for links a browser follows): what reports, logs, answers and links may show."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, host = parts.netloc.rsplit("@", 1)
    if keep_user:
        host = f"{userinfo.split(':', 1)[0]}:***@{host}" if ":" in userinfo else f"{userinfo}@{host}"
    return urlunsplit(parts._replace(netloc=host))


def secret_values(settings: Settings) -> list[str]:
    """Every configured credential (URI passwords, tokens, client secrets), for scrubbing text that may echo one."""
    found = [settings.reload_token.get_secret_value()]
    if settings.sentinelhub_client_secret is not None:
        found.append(settings.sentinelhub_client_secret.get_secret_value())
    for uri in (settings.store_uri, settings.catalog_uri, settings.mlflow_tracking_uri, settings.s3_endpoint_url or ""):
        password = urlsplit(uri).password
        if password:
            found += [password, quote(password, safe="")]
    return [v for v in dict.fromkeys(found) if len(v) >= 4]


def scrub(text: str, settings: Settings) -> str:
    """``text`` with every configured credential replaced by ``***`` (error messages may quote a URI)."""
    for secret in secret_values(settings):
        text = text.replace(secret, "***")
    return text


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing the environment)."""
    return Settings()
