"""The embedded default's broker (quay_site/broker.py): a consumer polling while another process
publishes sees whole messages only, and a torn file left by an older version does not stop it."""

import multiprocessing
import os

import pytest
from kombu import Connection

from quay_site.broker import Transport

# Big enough that writing one takes many write() calls' time: kombu's own transport let a
# consumer take such a file while it was still being written.
PAYLOAD_BYTES = 2 * 1024 * 1024
MESSAGES = 60


def connection(folder, transport=Transport):
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.01,
        },
    )


def _publish(folder, count: int) -> None:
    with connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        for index in range(count):
            queue.put({"index": index, "body": "x" * PAYLOAD_BYTES})
        queue.close()


def test_a_consumer_polling_during_publishes_gets_every_message_whole(tmp_path):
    publisher = multiprocessing.get_context("spawn").Process(target=_publish, args=(tmp_path, MESSAGES))
    publisher.start()
    received = []
    try:
        with connection(tmp_path) as conn:
            queue = conn.SimpleQueue("jobs")
            while len(received) < MESSAGES:
                message = queue.get(timeout=60)
                received.append(message.payload)
                message.ack()
            queue.close()
    finally:
        publisher.join(timeout=60)
    assert publisher.exitcode == 0
    assert sorted(item["index"] for item in received) == list(range(MESSAGES))
    assert all(len(item["body"]) == PAYLOAD_BYTES for item in received)
    assert not [name for name in os.listdir(tmp_path) if name.endswith((".msg", ".partial"))]


def test_a_torn_message_file_is_dropped_and_the_next_one_delivered(tmp_path, caplog):
    # A queue name of its own: kombu keeps the bindings it made in a process (the other test's
    # "jobs" in another folder) and would not bind the name again here.
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("torn")
        # What kombu's own transport could leave: the file created, the JSON not yet written.
        (tmp_path / "1_torn.torn.msg").write_bytes(b"")
        (tmp_path / "2_half.torn.msg").write_bytes(b'{"body": "{\\"ind')
        queue.put({"index": 7})
        message = queue.get(timeout=10)
        assert message.payload == {"index": 7}
        message.ack()
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
        queue.close()
    assert sum("dropped an undecodable message from queue torn" in r.getMessage() for r in caplog.records) == 2
