"""A labels-triggered training set must not sample a year whose stacks build_composites is still writing: the
year counts as published only from a finished run's publish to the next run's start."""

from __future__ import annotations

from terracover.settings import Settings


def test_a_year_is_published_only_between_a_finished_composites_run_and_the_next_start(settings: Settings) -> None:
    from terracover.pipeline import begin_composites, composites_published, publish_composites

    assert not composites_published(2023, settings)  # never built
    publish_composites([2023], {"stacks": 4, "built": 4, "years": ["2023"]}, settings)
    assert composites_published(2023, settings) and not composites_published(2022, settings)
    begin_composites([2023, 2022], settings)  # a rebuild starts: the year is half built until it publishes
    assert not composites_published(2023, settings)
