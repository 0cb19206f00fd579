"""Lightning's advertisement and its internal deprecation warning are dropped; its other lines are kept."""

import logging
import warnings

from ssad.utils.console import LIGHTNING_LOGGER, quiet_libraries


def test_quiet_libraries_drops_the_advertisement_and_keeps_the_rest(caplog):
    quiet_libraries()
    quiet_libraries()  # twice: one filter
    logger = logging.getLogger(LIGHTNING_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=LIGHTNING_LOGGER):
        logger.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()  # installed after simplefilter: takes precedence
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
