"""The task kinds every service needs: periodic work and queues of items."""

from lifecycle.tasks.periodic import PeriodicTask, next_deadline
from lifecycle.tasks.queue import PriorityQueueTask, QueueTask, UniqueQueueTask

__all__ = ["PeriodicTask", "PriorityQueueTask", "QueueTask", "UniqueQueueTask", "next_deadline"]
