"""Storage queues as the control plane uses them: post plain-text JSON, count, move poison back.

Messages are posted as plain UTF-8 text (host.json sets ``messageEncoding`` to ``none``), and a
queue that does not exist yet is created on first send, as the Functions output binding does.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

from shared.adapters.blob_state import translate
from shared.ports.queues import QueuedMessage


class StorageQueues:
    def __init__(self, service: QueueServiceClient):
        self.service = service

    def send(self, queue: str, body: str, *, visible_after_seconds: int = 0) -> None:
        client = self.service.get_queue_client(queue)
        try:
            try:
                client.send_message(body, visibility_timeout=visible_after_seconds or None)
            except ResourceNotFoundError:
                try:
                    client.create_queue()
                except ResourceExistsError:
                    pass
                client.send_message(body, visibility_timeout=visible_after_seconds or None)
        except Exception as e:
            raise translate(e, f"send to {queue}") from e

    def count(self, queue: str) -> int:
        """Approximate number of messages (visible or not); 0 for a queue that does not exist."""
        try:
            return int(self.service.get_queue_client(queue).get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0
        except Exception as e:
            raise translate(e, f"count {queue}") from e

    def browse(self, queue: str, *, limit: int, hide_seconds: int) -> list[QueuedMessage]:
        """Receive without deleting: each message reappears after ``hide_seconds`` (peek stops at 32)."""
        client = self.service.get_queue_client(queue)
        found: dict[str, QueuedMessage] = {}
        try:
            while len(found) < limit:
                batch = client.receive_messages(
                    max_messages=min(32, limit - len(found)), messages_per_page=32, visibility_timeout=hide_seconds
                )
                page = [QueuedMessage(m.id, m.content, int(m.dequeue_count or 0)) for m in batch]
                if not page:
                    break
                found.update((m.id, m) for m in page)
        except ResourceNotFoundError:
            return []
        except Exception as e:
            raise translate(e, f"browse {queue}") from e
        return list(found.values())

    def move_all(self, source: str, target: str, *, limit: int = 10_000) -> int:
        """Move every visible message of ``source`` to ``target`` (send first, then delete: never lost)."""
        client = self.service.get_queue_client(source)
        moved = 0
        try:
            while moved < limit:
                batch = list(client.receive_messages(max_messages=32, messages_per_page=32, visibility_timeout=60))
                if not batch:
                    return moved
                for message in batch:
                    self.send(target, message.content)
                    client.delete_message(message)
                    moved += 1
        except ResourceNotFoundError:
            return moved
        except Exception as e:
            raise translate(e, f"move {source} to {target}") from e
        return moved
