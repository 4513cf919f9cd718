"""The status page's second-draw column: read from the records conftest.py writes (``--lmlab-draw-record``)."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lmlab_pages", ROOT / "book" / "_ext" / "lmlab_pages.py")
pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pages)  # type: ignore[union-attr]
_conf = importlib.util.spec_from_file_location("book_conftest", ROOT / "conftest.py")
book_conftest = importlib.util.module_from_spec(_conf)
_conf.loader.exec_module(book_conftest)  # type: ignore[union-attr]


class _Item:
    def __init__(self, passed: bool, seconds: float) -> None:
        self._lmlab_passed = passed
        self._lmlab_seconds = seconds


def test_records_round_trip_into_the_status_column(tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("LMLAB_SEED_OFFSET", "1")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / pages.SECOND_DRAW
    book_conftest.write_draw_record(pathlib.Path("book/lora.md"), [_Item(True, 1.5), _Item(True, 2.0)], out)
    book_conftest.write_draw_record(pathlib.Path("book/fermi.md"), [_Item(True, 1.0), _Item(False, 0.5)], out)
    book_conftest.write_draw_record(pathlib.Path("book/notation.md"), [], out)  # collected, never ran
    records = pages.second_draw_records(tmp_path)
    assert set(records) == {"lora", "fermi", "notation"}
    assert records["lora"]["seconds"] == 3.5
    assert records["lora"]["draw"] == {"seed_offset": 1, "cpu_capability": "default", "threads": "1", "device": "auto"}
    assert pages._second_draw_cell(records["lora"]) == "passed"
    assert pages._second_draw_cell(records["fermi"]) == "failed (cell 2)"
    assert pages._second_draw_cell(records["notation"]) == "failed"
    assert pages._second_draw_cell(None) == "not run"
    note = pages._second_draw_note(records).astext()
    assert "seed offset 1" in note and "CPU kernels default" in note and "1 thread," in note


def test_no_records_says_the_second_draw_did_not_run(tmp_path: pathlib.Path) -> None:
    (tmp_path / pages.SECOND_DRAW).mkdir(parents=True)
    (tmp_path / pages.SECOND_DRAW / "broken.json").write_text("{not json")
    assert pages.second_draw_records(tmp_path) == {}
    assert "not run" in pages._second_draw_note({}).astext()
