"""The fast training path: the same loss, gradients and update as plain Keras, with less work per step on CPU.

Everything here is an optimisation of DeepAutoEncoder's training step, each checked against the plain path by a
test (tests/test_model_and_metrics.py):
- the rating matrices stay sparse; a batch is densified inside the compiled step, in the compute dtype;
- the output layer's bias, activation and the loss are evaluated only at the known ratings;
- the L2 penalty takes one pass over each kernel;
- SGD with momentum is one fused TensorFlow kernel per weight.
The matrix products stay dense: oneDNN's dense kernels beat TensorFlow's sparse ones on CPU even at 4.5% density
(benchmark.py --kernels).
"""

import keras
import tensorflow as tf


def densify(sparse, dtype):
    """A sparse batch as a dense tensor, built directly in the compute dtype."""
    return tf.scatter_nd(sparse.indices, tf.cast(sparse.values, dtype), sparse.dense_shape)


def outputs_at(model, inputs, positions, training):
    """The model's outputs at `positions` only ([k, 2] int64 pairs of batch row and column): the values of
    model(inputs) there. The output layer's matrix product stays dense, but its bias, activation, cast and
    everything after them run on the k known ratings instead of the whole batch x n_inputs matrix."""
    hidden = model.decode_hidden(model.encode(inputs, training))
    layer = model.output_layer
    logits = tf.matmul(hidden, tf.cast(layer.kernel, hidden.dtype))
    known = tf.cast(tf.gather_nd(logits, positions), tf.float32) + tf.gather(layer.bias, positions[:, 1])
    return layer.activation(known)


def l2_penalty(variables):
    """What Keras' L2 regularisers add to the loss, l2 * sum(kernel ** 2), in one pass over each kernel:
    tf.nn.l2_loss is sum(x ** 2) / 2, and its gradient a single multiply (Keras' square-then-sum takes five
    elementwise passes, forward and backward)."""
    penalties = [2.0 * variable.regularizer.l2 * tf.nn.l2_loss(variable.value)
                 for variable in variables if variable.regularizer is not None]
    return tf.add_n(penalties or [tf.constant(0.0)])


def is_plain_momentum(optimizer):
    """Plain SGD with momentum (the seed's optimizer), which apply_fused_momentum reproduces exactly. Not under
    tf.distribute: the fused kernel would update one copy of the mirrored weights with one replica's gradient, so
    there the optimizer's own (all-reduced) update runs."""
    return (not tf.distribute.has_strategy() and type(optimizer) is keras.optimizers.SGD and optimizer.momentum > 0
            and not optimizer.nesterov
            and not (optimizer.weight_decay or optimizer.clipnorm or optimizer.clipvalue
                     or optimizer.global_clipnorm or optimizer.use_ema)
            and optimizer.gradient_accumulation_steps is None)


def apply_fused_momentum(optimizer, gradients, variables):
    """keras.optimizers.SGD's update, m = momentum * m - learning_rate * g and w = w + m, in one TensorFlow kernel
    per weight instead of Keras' five elementwise passes. It reads Keras' momentum slots, so checkpoints and a
    later switch to optimizer.apply see the same state."""
    if not optimizer.built:
        optimizer.build(variables)
    learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
    momentum = tf.constant(optimizer.momentum, tf.float32)
    for gradient, variable in zip(gradients, variables):
        accumulator = optimizer.momentums[optimizer._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(var=variable.value.handle, accum=accumulator.value.handle,
                                              lr=learning_rate, grad=gradient, momentum=momentum)
    optimizer.iterations.assign_add(1)
