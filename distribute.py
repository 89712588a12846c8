"""Training on several devices (MirroredStrategy) or machines (MultiWorkerMirroredStrategy) with tf.distribute.

Each global batch of B rows is cut into one slice per replica, in replica order, so that N replicas with a global
batch B see exactly the rows one device sees; the masked losses divide by the global number of ratings (or rows),
summed over the replicas (model.py), so the step is the same as on one device.
"""

import functools
import json
import os

COLLECTIVE_TIMEOUT_SECONDS = 120  # a worker that dies stops the others with an error after this long


class WorkerFailure(Exception):
    """A collective operation failed: another worker died or cannot be reached."""


@functools.cache  # once per process: logical devices cannot change once TensorFlow has started
def make_strategy(kind, devices):
    """None for 'none'; 'mirrored' over the local GPUs, or over `devices` logical CPU devices (for testing on a
    CPU: must run before TensorFlow executes anything); 'multi-worker' from the TF_CONFIG environment variable."""
    if kind == "none":
        return None
    import tensorflow as tf

    if kind == "mirrored":
        if devices:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
            return tf.distribute.MirroredStrategy([f"/cpu:{index}" for index in range(devices)])
        return tf.distribute.MirroredStrategy()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief():
    """Whether this process writes results: always on one machine; under TF_CONFIG the chief, or worker 0 when
    the cluster names no chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def distribute_batches(strategy, batches):
    """The global batches of a tf.data dataset of (inputs, targets) SparseTensor or dense pairs, as per-replica
    slices: global batch g becomes slices g.0 … g.(R-1), and each worker keeps those of its own replicas, which
    tf.distribute hands to them in turn."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def slices(inputs, targets):
        rows = tf.shape(inputs)[0] if not isinstance(inputs, tf.SparseTensor) else inputs.dense_shape[0]
        size = (tf.cast(rows, tf.int64) + replicas - 1) // replicas
        starts = tf.range(replicas, dtype=tf.int64) * size

        def cut(matrix, start):
            if isinstance(matrix, tf.SparseTensor):
                return tf.sparse.slice(matrix, [start, 0], [size, matrix.dense_shape[1]])
            return matrix[start:start + size]

        return tf.data.Dataset.from_tensor_slices(starts).map(
            lambda start: (cut(inputs, start), cut(targets, start)))

    def dataset_fn(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        per_replica = batches.flat_map(slices).enumerate()
        mine = per_replica.filter(lambda index, pair: (index % replicas >= first) & (index % replicas < first + local))
        return mine.map(lambda index, pair: pair)

    return strategy.distribute_datasets_from_function(dataset_fn)
