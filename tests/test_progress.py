"""Progress output: plain lines off a terminal, nothing with IMIX_PROGRESS=0, items unchanged."""

from __future__ import annotations

from imix_sweeps.progress import progress


def test_plain_lines_when_not_on_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.delenv("IMIX_PROGRESS", raising=False)
    assert list(progress(range(5), "collect", total=5, unit="files", every_s=0.0)) == list(range(5))
    err = capsys.readouterr().err.splitlines()  # pytest's stderr is not a TTY
    assert len(err) == 5 and err[-1].startswith("collect: 5/5 files (")
    assert "\r" not in "".join(err)


def test_switched_off(capsys, monkeypatch) -> None:
    monkeypatch.setenv("IMIX_PROGRESS", "0")
    assert list(progress(iter("abc"), "x", every_s=0.0)) == ["a", "b", "c"]
    assert capsys.readouterr().err == ""
