"""Copy benchmarks/results/latest.md into README.md between the bench markers (run after `make bench`)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    latest = (ROOT / "benchmarks" / "results" / "latest.md").read_text().strip()
    body = latest.split("\n", 1)[1].strip()  # drop the title line
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(
        r"<!-- bench:start -->.*<!-- bench:end -->",
        lambda _: f"<!-- bench:start -->\n{body}\n<!-- bench:end -->",
        text,
        flags=re.S,
    )
    readme.write_text(new)


if __name__ == "__main__":
    main()
