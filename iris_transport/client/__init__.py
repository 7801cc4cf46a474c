"""The IRIS client: send orders and gradings, handle events and results.

::

    from iris_transport.client import AsyncIrisClient
    from iris_transport.models import OrderCreationReceipt

    client = AsyncIrisClient.from_config("iris-transport.toml")

    @client.on_event(OrderCreationReceipt)
    async def created(event):
        print(event.local_id, event.succeeded)

    await client.submit_order(order)     # validated; ClientGuid and Site filled in
    await client.serve()                 # until SIGINT or SIGTERM

``IrisClient`` offers the same calls, blocking.
"""

from iris_transport.client.async_client import AsyncIrisClient, SentMessage
from iris_transport.client.stream import MessageStream, StreamClosed
from iris_transport.client.sync_client import IrisClient, SyncMessageStream

__all__ = ["AsyncIrisClient", "IrisClient", "MessageStream", "SentMessage", "StreamClosed", "SyncMessageStream"]
