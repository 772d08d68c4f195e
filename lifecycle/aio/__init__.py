"""The asyncio runtime of `lifecycle`."""

from lifecycle.aio.blocking import (
    BlockedEpisode,
    BlockingDetector,
    BlockingDetectorError,
    InvalidThreshold,
)

__all__ = ["BlockedEpisode", "BlockingDetector", "BlockingDetectorError", "InvalidThreshold"]
