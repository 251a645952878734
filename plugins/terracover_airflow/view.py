"""The terracover control room inside the Airflow UI (Airflow 3 plugin): a FastAPI app mounted by the
api-server under ``/terracover`` and an external view in the navigation that shows it at ``/plugin/terracover``.

Per year: champion / challenger / shadow with metrics and approval records (MLflow registry), feature-stack
coverage and quality (catalog), the published map, pending approvals (Airflow's HITL table) and links to each
MLflow run and to the service's map page. The page is read-only and needs a logged-in Airflow user (the UI's
session cookie, or a bearer token), like the rest of the API.
"""

from __future__ import annotations

from html import escape
from typing import Any

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from terracover_airflow.links import MlflowRunLink, StacItemsLink

PREFIX = "/terracover"
app = FastAPI(title="terracover", docs_url=None, redoc_url=None, openapi_url=None)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#1a202c} h1{font-size:1.4rem} h2{font-size:1.15rem;
margin-top:1.6rem} table{border-collapse:collapse;margin:.4rem 0} td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;
text-align:left} th{background:#edf2f7} .muted{color:#718096} a{color:#2b6cb0}
"""


def _link(href: str, text: str) -> str:
    if href.startswith(("http://", "https://", "/")):
        return f'<a href="{escape(href)}" target="_top">{escape(text)}</a>'
    return f"{escape(text)} <code>{escape(href)}</code>"


def _pending() -> list[dict[str, Any]]:
    """Approval requests nobody answered yet (Airflow's own HITL table)."""
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(HITLDetail).where(HITLDetail.responded_at.is_(None))).all()
        return [
            {
                "subject": r.subject,
                "dag_id": r.task_instance.dag_id,
                "run_id": r.task_instance.run_id,
                "task_id": r.task_instance.task_id,
            }
            for r in rows
            if r.task_instance is not None
        ]


def render() -> str:
    from terracover.overview import year_view, years
    from terracover.pipeline import ready_catalog
    from terracover.settings import get_settings

    s = get_settings()
    catalog = ready_catalog(s)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>terracover</title><style>{STYLE}</style>"]
    parts.append("</head><body><h1>terracover: models, data and maps per year</h1>")
    parts.append(f"<p>{_link(s.serving_url.rstrip('/') + '/', 'Map page')} · service {escape(s.serving_url)}</p>")
    pending = _pending()
    parts.append(f"<h2>Pending approvals ({len(pending)})</h2>")
    if pending:
        parts.append("<ul>")
        for p in pending:
            href = f"/dags/{p['dag_id']}/runs/{p['run_id']}/tasks/{p['task_id']}/required_actions"
            parts.append(f"<li>{_link(href, p['subject'])}</li>")
        parts.append("</ul>")
    else:
        parts.append("<p class='muted'>none</p>")
    for year in years(catalog, s):
        v = year_view(year, catalog, s)
        parts.append(f"<h2>{year}</h2>")
        quality = f"{v.mean_valid_fraction:.1%}" if v.mean_valid_fraction is not None else "-"
        published = f"v{escape(v.map_version)}, {v.map_subtiles} subtiles" if v.map_version else "not published"
        parts.append(
            f"<p>Feature stacks: <b>{v.stacks}</b> · mean clear-observation fraction {quality} · map: {published}</p>"
        )
        if not v.versions:
            parts.append("<p class='muted'>no champion, challenger or shadow yet</p>")
            continue
        parts.append(
            "<table><tr><th>alias</th><th>version</th><th>overall accuracy</th><th>kappa</th><th>macro F1</th>"
            "<th>approved by</th><th>approved at</th><th>MLflow</th></tr>"
        )
        for m in v.versions:
            cells = [m.alias, m.version] + [f"{m.metrics[k]:.4f}" if k in m.metrics else "-" for k in
                                            ("overall_accuracy", "kappa", "macro_f1")]  # fmt: skip
            cells += [m.approved_by or "-", m.approved_at or "-"]
            row = "".join(f"<td>{escape(c)}</td>" for c in cells)
            parts.append(f"<tr>{row}<td>{_link(m.run_link, 'run')}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(get_user)])
def overview() -> str:
    return render()


@app.get("/stac/{collection_id}", dependencies=[Depends(get_user)])
def stac_items(collection_id: str, year: str = "") -> dict[str, Any]:
    """A collection's items (of the given comma-separated years) as a STAC ItemCollection."""
    from terracover.catalog import ALL_COLLECTIONS
    from terracover.pipeline import ready_catalog

    if collection_id not in ALL_COLLECTIONS:
        raise HTTPException(404, f"unknown collection {collection_id!r}; terracover has {sorted(ALL_COLLECTIONS)}")
    wanted = {int(y) for y in year.split(",") if y.strip().isdigit()}
    items = [
        i.to_dict()
        for i in ready_catalog().search(collections=[collection_id])
        if not wanted or i.properties.get("terracover:year") in wanted
    ]
    return {"type": "FeatureCollection", "features": items}


class TerracoverPlugin(AirflowPlugin):
    name = "terracover"
    operator_extra_links = [MlflowRunLink(), StacItemsLink()]  # noqa: RUF012
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "terracover"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012 - the plugin interface declares these as plain lists
        {
            "name": "terracover",
            "href": f"{PREFIX}/",
            "url_route": "terracover",
            "destination": "nav",
            "category": "browse",
        }
    ]
