"""``python -m terracover.report``: what the platform holds right now, per catalog collection and store prefix."""

from __future__ import annotations

from collections import Counter

from terracover.catalog import open_catalog
from terracover.settings import Settings, get_settings, redact_uri
from terracover.store import open_store


def summary(s: Settings) -> str:
    cat = open_catalog(s)
    store = open_store(s)
    lines = [f"{name:<8}{redact_uri(uri)}" for name, uri in (("store", s.store_uri), ("catalog", s.catalog_uri))]
    lines += [f"mlflow  {redact_uri(s.mlflow_tracking_uri)}", ""]
    lines.append(f"{'collection':<26} items")
    for cid in sorted(cat.collections()):
        lines.append(f"{cid:<26} {len(cat.search(collections=[cid])):>5}")
    prefixes = Counter(key.split("/", 1)[0] for key in store.list())
    lines.append("")
    lines.append(f"{'store prefix':<26} objects")
    lines.extend(f"{p + '/':<26} {n:>5}" for p, n in sorted(prefixes.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(get_settings()))
