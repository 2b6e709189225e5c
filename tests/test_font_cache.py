"""matplotlib's font cache for the grading kernels (``instructor/grading/font_cache.py``): built
once per machine and matplotlib version in the grader's cache folder, then only copied; graders
building it at the same moment end with one cache and no leftovers; where the folder cannot be
written, each run builds its own."""

from __future__ import annotations

import threading
from importlib import metadata

import pytest

from instructor.grading import font_cache
from instructor.grading.limits import Limits
from instructor.grading.workspace import Workspace
from labs import SOLUTIONS, discover_labs


def _fontlists(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.glob("fontlist-*.json")}


def test_the_cache_is_built_once_then_found(tmp_path, monkeypatch):
    folder = font_cache.shared_font_cache(tmp_path)
    assert folder == tmp_path / "backprop-lab-kit" / f"matplotlib-{metadata.version('matplotlib')}"
    assert _fontlists(folder), sorted(p.name for p in folder.iterdir())

    def build_again(_):
        raise AssertionError("the font cache was built a second time")
    monkeypatch.setattr(font_cache, "write_font_cache", build_again)
    assert font_cache.shared_font_cache(tmp_path) == folder


def test_a_cache_folder_that_cannot_be_made_gives_none(tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder would go")
    assert font_cache.shared_font_cache(not_a_folder) is None


@pytest.mark.slow
def test_graders_building_at_once_keep_one_cache_and_no_leftovers(tmp_path):
    found, errors = [], []

    def build():
        try:
            found.append(font_cache.shared_font_cache(tmp_path))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(found)) == 1 and found[0] is not None, found
    assert [p.name for p in (tmp_path / "backprop-lab-kit").iterdir()] == [found[0].name]


@pytest.mark.slow
@pytest.mark.parametrize("cache_home", ["writable", "a file"])
def test_each_run_folder_gets_a_font_cache(tmp_path, monkeypatch, cache_home):
    """A run copies the machine's cache, or builds its own where there is none to be had."""
    home = tmp_path / "cache"
    if cache_home == "a file":
        home.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    lab = discover_labs()[0]
    space = Workspace.open(lab, SOLUTIONS / lab, Limits())
    try:
        copied = _fontlists(space.matplotlib_cache)
        assert copied
        if cache_home == "writable":
            assert copied == _fontlists(font_cache.shared_font_cache(home))
    finally:
        space.close()
