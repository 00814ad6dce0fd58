"""The bench's Ed25519 reference, sampled around each timed section (``bench.reference``)."""

from __future__ import annotations

import time

from bench import micro
from bench.reference import Reference


def small() -> float:
    return micro.ed25519_verify_per_s(1600)


def test_each_section_is_judged_on_the_samples_around_it() -> None:
    lines: list[str] = []
    ref = Reference(lines.append, small)
    first = ref.sample("start")
    with ref.around("appends"):
        time.sleep(0.01)
    with ref.around("verify"):  # starts at once: the previous section's last sample is its first
        pass
    report = ref.report()
    labels = [s["label"] for s in report["samples"]]
    assert labels == ["start", "after appends", "after verify"]
    appends, verify = report["sections"]["appends"], report["sections"]["verify"]
    assert appends["before"] == first and verify["before"] == appends["after"]
    assert ref.of("appends") == round((appends["before"] + appends["after"]) / 2, 1)
    assert ref.ratio(1000.0, "verify") == round(1000.0 / ref.of("verify"), 3)
    assert ref.ratio_to_first(1000.0) == round(1000.0 / first, 3)
    assert ref.ratio(None, "verify") is None and ref.ratio(0.0, "verify") is None
    values = [s["per_s"] for s in report["samples"]]
    assert report["spread"] == round(max(values) / min(values), 3)
    assert len(lines) == 3 and all("Ed25519 reference" in line for line in lines)


def test_a_section_after_a_pause_takes_a_fresh_first_sample() -> None:
    ref = Reference(lambda _line: None, small)
    ref.sample("start")
    ref._last_at -= 60  # the start was a minute ago
    with ref.around("releases"):
        pass
    assert [s["label"] for s in ref.samples] == ["start", "before releases", "after releases"]
