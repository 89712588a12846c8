"""The deep autoencoder of Kuchaiev & Ginsburg (2017) in Keras 3, as the seed built it.

    input (a row of ratings) -> Dense encoder layers -> latent Dense -> Dropout -> Dense decoder layers -> Dense output

`layers` lists the hidden sizes, encoder, latent and decoder: [512, 512, 1024, 512, 512] has a 1024-unit latent
layer in the middle. L2 regularisation is `l2_encode` on encoder and latent kernels, `l2_decode` on decoder and
output kernels. The loss (utils.py) only counts known ratings: the seed's per-row masked RMSE, or the paper's
masked MSE.

Training steps accept a batch either as dense arrays (the plain reference path) or as tf.SparseTensor (the fast
path: the rating matrix stays sparse, the batch is densified inside the compiled step and the loss reads the
output only at the known ratings). Both compute the same loss and gradients.
"""

import keras
import tensorflow as tf

from utils import LOSSES, masked_rmse


class TiedDense(keras.layers.Layer):
    """A decoder layer whose kernel is the transposed kernel of an encoder layer (the paper's constrained
    autoencoder); it owns only its bias."""

    def __init__(self, tied_to, activation, **kwargs):
        super().__init__(**kwargs)
        self.tied_to = tied_to
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.tied_to.kernel.shape[0],), initializer="zeros", name="bias")

    @property
    def kernel(self):
        return tf.transpose(self.tied_to.kernel)

    def call(self, inputs):
        return self.activation(tf.matmul(inputs, tf.cast(self.kernel, inputs.dtype)) + tf.cast(self.bias, inputs.dtype))


@keras.saving.register_keras_serializable(package="deeprec")
class DeepAutoEncoder(keras.Model):
    """The autoencoder with its own training and validation steps (masked loss, dense re-feeding, sparse batches).
    Saved as a .keras file; `import model` before keras.models.load_model registers it."""

    def __init__(self, n_inputs, layers=(512, 512, 1024, 512, 512), dropout=0.8, activation="selu",
                 last_activation="selu", l2_encode=0.001, l2_decode=0.001, constrained=False, input_dropout=0.0,
                 refeed_steps=0, loss_name="masked_rmse", **kwargs):
        super().__init__(**kwargs)
        self.n_inputs, self.layer_sizes = n_inputs, list(layers)
        self.dropout_rate, self.input_dropout_rate = dropout, input_dropout
        self.activation_name, self.last_activation_name = activation, last_activation
        self.l2_encode, self.l2_decode = l2_encode, l2_decode
        self.constrained, self.refeed_steps = constrained, refeed_steps
        self.loss_name, self.masked_loss = loss_name, LOSSES[loss_name]

        latent = len(self.layer_sizes) // 2  # index of the latent layer: the middle one
        encoder_sizes, decoder_sizes = self.layer_sizes[:latent + 1], self.layer_sizes[latent + 1:]

        def dense(units, l2, name, activation_name):
            return keras.layers.Dense(units, activation=activation_name, name=name,
                                      kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)

        self.input_noise = keras.layers.Dropout(input_dropout, name="input_dropout")
        encoder_names = [f"encoder_{i}" for i in range(latent)] + ["latent"]
        self.encoder = [dense(units, l2_encode, name, activation) for units, name in zip(encoder_sizes, encoder_names)]
        self.dropout = keras.layers.Dropout(dropout, name="latent_dropout")
        if constrained:
            # Decoder layer i mirrors encoder layer -1-i; the output mirrors the first encoder layer.
            self.decoder = [TiedDense(self.encoder[-1 - i], activation, name=f"decoder_{i}")
                            for i in range(len(decoder_sizes))]
            self.output_layer = TiedDense(self.encoder[0], last_activation, name="output")
        else:
            self.decoder = [dense(units, l2_decode, f"decoder_{i}", activation)
                            for i, units in enumerate(decoder_sizes)]
            self.output_layer = dense(n_inputs, l2_decode, "output", last_activation)

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.rmse_tracker = keras.metrics.Mean(name="masked_rmse_clip")

    def build(self, input_shape=None):
        """Create every weight up front, so that saved weights can be loaded before any training step."""
        size = self.n_inputs
        for layer in self.encoder + self.decoder + [self.output_layer]:
            layer.build((None, size))
            size = layer.tied_to.kernel.shape[0] if isinstance(layer, TiedDense) else layer.units

    def call(self, inputs, training=False):
        return tf.cast(self.output_layer(self.last_hidden(inputs, training)), tf.float32)

    def last_hidden(self, inputs, training=False):
        """Everything before the output layer."""
        hidden = self.input_noise(inputs, training=training)
        for layer in self.encoder:
            hidden = layer(hidden)
        hidden = self.dropout(hidden, training=training)
        for layer in self.decoder:
            hidden = layer(hidden)
        return hidden

    def call_at(self, inputs, positions, training=False):
        """The outputs at `positions` only ([k, 2] int64 pairs of batch row and column): the values of call() there.

        The output layer's matrix product stays dense (oneDNN's dense kernels are far faster on CPU than
        TensorFlow's sparse ones: benchmark.py --kernels), but its bias, activation, cast and everything after
        them run on the k known ratings only instead of the whole batch x n_inputs matrix (4.5% of it).
        """
        hidden = self.last_hidden(inputs, training)
        layer = self.output_layer
        logits = tf.matmul(hidden, tf.cast(layer.kernel, hidden.dtype))
        known = tf.cast(tf.gather_nd(logits, positions), tf.float32) + tf.gather(layer.bias, positions[:, 1])
        return layer.activation(known)

    # ------------------------------------------------------------------------------------------------------------
    # Training: the loss is the masked loss (the seed's per-row RMSE, or the paper's MMSE) plus the L2 penalties,
    # as Keras reports it; the metric is the seed's masked RMSE with predictions clipped to [1, 5].
    # A sparse batch (the fast path) is densified here, directly in the compute dtype, and, unless re-feeding needs
    # the dense output, the network is evaluated only at the known ratings of the targets (call_at).

    def forward(self, inputs, targets, training, dense_output=False):
        if isinstance(inputs, tf.SparseTensor):
            inputs = tf.scatter_nd(inputs.indices, tf.cast(inputs.values, self.compute_dtype), inputs.dense_shape)
        if isinstance(targets, tf.SparseTensor) and not dense_output:
            return self.call_at(inputs, targets.indices, training=training)
        return self(inputs, training=training)

    def penalised_loss(self, targets, outputs):
        """The masked loss plus the L2 penalties of the kernels: Keras' regularisers on the dense path, the same sum
        from l2_penalty on the fast (sparse) path."""
        if isinstance(targets, tf.SparseTensor):
            return self.masked_loss(targets, outputs) + self.l2_penalty()
        return self.masked_loss(targets, outputs) + tf.add_n(self.losses or [tf.constant(0.0)])

    def l2_penalty(self):
        """What Keras' L2 regularisers add to the loss, l2 * sum(kernel ** 2), in one pass over each kernel:
        tf.nn.l2_loss is sum(x ** 2) / 2, and its gradient is a single multiply (Keras' square-then-sum takes
        five elementwise passes, forward and backward, over 5.4 million weights in the seed's network)."""
        penalties = [2.0 * variable.regularizer.l2 * tf.nn.l2_loss(variable.value)
                     for variable in self.trainable_variables if variable.regularizer is not None]
        return tf.add_n(penalties or [tf.constant(0.0)])

    def apply_gradients(self, gradients, fused):
        """optimizer.apply, or with fused=True and plain SGD with momentum (the seed's optimizer) the same update,
        m = momentum * m - learning_rate * g and w = w + m, in one TensorFlow kernel per weight instead of
        Keras' five elementwise passes."""
        optimizer, variables = self.optimizer, self.trainable_variables
        plain_momentum = (type(optimizer) is keras.optimizers.SGD and optimizer.momentum > 0 and not optimizer.nesterov
                          and not (optimizer.weight_decay or optimizer.clipnorm or optimizer.clipvalue
                                   or optimizer.global_clipnorm or optimizer.use_ema)
                          and optimizer.gradient_accumulation_steps is None)
        if not (fused and plain_momentum):
            optimizer.apply(gradients, variables)
            return
        if not optimizer.built:
            optimizer.build(variables)
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        momentum = tf.constant(optimizer.momentum, tf.float32)
        for gradient, variable in zip(gradients, variables):
            accumulator = optimizer.momentums[optimizer._get_variable_index(variable)]
            tf.raw_ops.ResourceApplyKerasMomentum(var=variable.value.handle, accum=accumulator.value.handle,
                                                  lr=learning_rate, grad=gradient, momentum=momentum)
        optimizer.iterations.assign_add(1)

    def loss_and_gradients(self, inputs, targets):
        """One forward and backward pass. `inputs` and `targets` are dense tensors or tf.SparseTensor. Returns the
        loss, the gradients, the outputs (dense, or at the known targets only) and the clipped masked RMSE."""
        with tf.GradientTape() as tape:
            outputs = self.forward(inputs, targets, training=True, dense_output=self.refeed_steps > 0)
            loss = self.penalised_loss(targets, outputs)
        gradients = tape.gradient(loss, self.trainable_variables)
        return loss, gradients, outputs, masked_rmse(targets, outputs, clip=True)

    def train_step(self, data):
        inputs, targets = data
        fast = isinstance(inputs, tf.SparseTensor)
        loss, gradients, outputs, clipped_rmse = self.loss_and_gradients(inputs, targets)
        self.apply_gradients(gradients, fused=fast)
        # Dense re-feeding (paper, section 3.3): the dense output f(x) is a valid rating vector for the same user,
        # so it is fed back as input and target, and the network takes another step on it.
        for _ in range(self.refeed_steps):
            refed = tf.stop_gradient(outputs)
            _, gradients, outputs, _ = self.loss_and_gradients(refed, refed)
            self.apply_gradients(gradients, fused=fast)
        return self.track(loss, clipped_rmse, inputs)

    def test_step(self, data):
        inputs, targets = data
        outputs = self.forward(inputs, targets, training=False)
        loss = self.penalised_loss(targets, outputs)
        return self.track(loss, masked_rmse(targets, outputs, clip=True), inputs)

    def track(self, loss, clipped_rmse, inputs):
        """Epoch means of the batch values, weighted by the batch's number of rows."""
        batch_rows = tf.cast(inputs.dense_shape[0] if isinstance(inputs, tf.SparseTensor) else tf.shape(inputs)[0],
                             tf.float32)
        self.loss_tracker.update_state(loss, sample_weight=batch_rows)
        self.rmse_tracker.update_state(clipped_rmse, sample_weight=batch_rows)
        return {"loss": self.loss_tracker.result(), "masked_rmse_clip": self.rmse_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.rmse_tracker]

    def get_config(self):
        return {"n_inputs": self.n_inputs, "layers": self.layer_sizes, "dropout": self.dropout_rate,
                "activation": self.activation_name, "last_activation": self.last_activation_name,
                "l2_encode": self.l2_encode, "l2_decode": self.l2_decode, "constrained": self.constrained,
                "input_dropout": self.input_dropout_rate, "refeed_steps": self.refeed_steps,
                "loss_name": self.loss_name, "name": self.name}
