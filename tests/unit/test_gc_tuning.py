"""The API process's collector settings (taskservice.api.server.tune_gc)."""

import gc

from taskservice.api.server import FULL_COLLECTION_EVERY, tune_gc


def test_the_startup_objects_are_frozen_and_full_collections_are_rare():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
