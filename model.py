"""The deep autoencoder of Kuchaiev & Ginsburg (2017) in Keras 3, and its masked losses.

    input (a row of ratings) -> Dense encoder layers -> latent Dense -> Dropout -> Dense decoder layers -> Dense output

`layers` lists the hidden sizes, encoder, latent and decoder: [512, 512, 1024, 512, 512] has a 1024-unit latent
layer in the middle. L2 regularisation is `l2_encode` on encoder and latent kernels, `l2_decode` on decoder and
output kernels. The loss only counts known ratings: the seed's per-row masked RMSE, or the paper's masked MSE.

The training step accepts a batch as dense arrays (the plain Keras path) or as tf.SparseTensor (the fast path,
fast_path.py): both compute the same loss and gradients.
"""

import keras
import tensorflow as tf

import fast_path

# ----------------------------------------------------------------------------------------------------------------
# Masked losses. A rating of 0 means unknown.

def row_squared_errors(y_true, y_pred, clip=None):
    """Per row: the sum of squared errors over the row's known ratings, and their count. With clip=(low, high),
    predictions are clipped to the rating scale first.

    y_true is dense (0 = unknown) or a tf.SparseTensor in canonical (row-major) order. For the latter, y_pred is
    either dense (read only at the known positions) or already the vector of predictions at y_true.indices
    (fast_path.outputs_at).
    """
    y_pred = tf.cast(y_pred, tf.float32)
    if isinstance(y_true, tf.SparseTensor):
        predicted = y_pred if y_pred.shape.rank == 1 else tf.gather_nd(y_pred, y_true.indices)
        if clip:
            predicted = tf.clip_by_value(predicted, *clip)
        # A SparseTensor in canonical order lists its rows in non-decreasing order, so the sorted segment sum
        # applies (twice as fast as the unsorted one on CPU). Trailing rows without ratings get no entry, which
        # changes neither loss.
        rows = y_true.indices[:, 0]
        squared_error = tf.math.segment_sum(tf.square(y_true.values - predicted), rows)
        return squared_error, tf.math.segment_sum(tf.ones_like(y_true.values), rows)
    if clip:
        y_pred = tf.clip_by_value(y_pred, *clip)
    mask = tf.cast(tf.not_equal(y_true, 0), tf.float32)
    squared_error = tf.reduce_sum(mask * tf.square(tf.cast(y_true, tf.float32) - y_pred), axis=-1)
    return squared_error, tf.reduce_sum(mask, axis=-1)


def replica_sum(value):
    """The sum of `value` over the replicas of a tf.distribute strategy; the value itself on one device."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def masked_rmse(y_true, y_pred, clip=None):
    """The seed's loss: per row, RMSE over that row's known ratings; averaged over the rows that have any.
    With clip=(low, high) it is the seed's reported metric, masked_rmse_clip. Under tf.distribute, a replica's
    share: its rows' sum divided by the rows of the whole global batch (summed over replicas)."""
    return mean_row_rmse(*row_squared_errors(y_true, y_pred, clip))


def mean_row_rmse(squared_error, count):
    """masked_rmse from row_squared_errors' per-row sums."""
    has_ratings = count > 0
    # tf.where keeps rows without ratings out of both the value and the gradient (sqrt'(0) is infinite).
    row_mse = tf.where(has_ratings, squared_error / tf.maximum(count, 1.0), tf.ones_like(count))
    row_rmse = tf.where(has_ratings, tf.sqrt(row_mse), tf.zeros_like(count))
    rows = replica_sum(tf.reduce_sum(tf.cast(has_ratings, tf.float32)))
    return tf.reduce_sum(row_rmse) / tf.maximum(tf.stop_gradient(rows), 1.0)


def masked_mse(y_true, y_pred, clip=None):
    """The paper's loss (MMSE): mean squared error over all known ratings of the batch (under tf.distribute, a
    replica's share: its squared errors divided by the known ratings of the whole global batch)."""
    squared_error, count = row_squared_errors(y_true, y_pred, clip)
    ratings = replica_sum(tf.reduce_sum(count))
    return tf.reduce_sum(squared_error) / tf.maximum(tf.stop_gradient(ratings), 1.0)


LOSSES = {"masked_rmse": masked_rmse, "masked_mse": masked_mse}
# The network's hyperparameters: the keys of a run's configuration that DeepAutoEncoder takes (and get_config saves).
MODEL_KEYS = ["layers", "activation", "last_activation", "dropout", "l2_encode", "l2_decode", "constrained",
              "input_dropout", "refeed_steps", "loss"]


# ----------------------------------------------------------------------------------------------------------------
# The network.

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
    """The autoencoder with its own training and validation steps. Saved as a .keras file; `import model` before
    keras.models.load_model registers it. `n_inputs` is the row length (items, or users in item orientation),
    `rating_scale` the (lowest, highest) rating, to which the reported metric clips."""

    def __init__(self, n_inputs, rating_scale, layers, activation, last_activation, dropout, l2_encode, l2_decode,
                 constrained, input_dropout, refeed_steps, loss, **kwargs):
        super().__init__(**kwargs)
        self.n_inputs, self.rating_scale = n_inputs, tuple(rating_scale)
        self.hyperparameters = dict(
            layers=list(layers), activation=activation, last_activation=last_activation, dropout=dropout,
            l2_encode=l2_encode, l2_decode=l2_decode, constrained=constrained, input_dropout=input_dropout,
            refeed_steps=refeed_steps, loss=loss)
        self.refeed_steps, self.masked_loss = refeed_steps, LOSSES[loss]

        latent = len(layers) // 2  # index of the latent layer: the middle one
        encoder_sizes, decoder_sizes = layers[:latent + 1], layers[latent + 1:]

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
        # The global RMSE (what the results report) of the epoch: its squared errors and ratings, summed.
        self.squared_error_tracker = keras.metrics.Sum(name="squared_error")
        self.ratings_tracker = keras.metrics.Sum(name="ratings")

    def build(self, input_shape=None):
        """Create every weight up front, so that saved weights can be loaded before any training step."""
        size = self.n_inputs
        for layer in self.encoder + self.decoder + [self.output_layer]:
            layer.build((None, size))
            size = layer.tied_to.kernel.shape[0] if isinstance(layer, TiedDense) else layer.units

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to do: build() makes every weight up front. (Under tf.distribute, Keras' own version averages a
        data batch across the replicas, which fails for the fast path's SparseTensor batches.)"""

    def encode(self, inputs, training=False):
        hidden = self.input_noise(inputs, training=training)
        for layer in self.encoder:
            hidden = layer(hidden)
        return self.dropout(hidden, training=training)

    def decode_hidden(self, latent):
        """The decoder up to, not including, the output layer (the fast path computes that one at known ratings)."""
        for layer in self.decoder:
            latent = layer(latent)
        return latent

    def call(self, inputs, training=False):
        return tf.cast(self.output_layer(self.decode_hidden(self.encode(inputs, training))), tf.float32)

    def input_matrix(self, train_matrix):
        """What the network reads to predict: the train matrix itself (as for KernelAutoEncoder's Sparse FC)."""
        return train_matrix

    # ------------------------------------------------------------------------------------------------------------
    # Training: the loss is the masked loss plus the L2 penalties, as Keras reports it; the metric is the seed's
    # masked RMSE with predictions clipped to the rating scale.

    def forward(self, inputs, targets, training, dense_output=False):
        """The outputs for a batch: dense, or (fast path, sparse targets) at the known target ratings only."""
        if isinstance(inputs, tf.SparseTensor):
            inputs = fast_path.densify(inputs, self.compute_dtype)
        if isinstance(targets, tf.SparseTensor) and not dense_output:
            return fast_path.outputs_at(self, inputs, targets.indices, training)
        return self(inputs, training=training)

    def penalised_loss(self, targets, outputs):
        """The masked loss plus the L2 penalties: Keras' regularisers on the dense path, the same sum in one pass on
        the fast path. Under tf.distribute this is one replica's share: the optimizer sums the replicas'
        gradients, so each counts the penalty once divided by the number of replicas."""
        if isinstance(targets, tf.SparseTensor):
            penalty = fast_path.l2_penalty(self.trainable_variables)
        else:
            penalty = tf.add_n(self.losses or [tf.constant(0.0)])
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        return self.masked_loss(targets, outputs) + (penalty / replicas if replicas > 1 else penalty)

    def loss_and_gradients(self, inputs, targets):
        """One forward and backward pass. Returns the loss, the gradients and the outputs (dense, or at the known
        targets only)."""
        with tf.GradientTape() as tape:
            outputs = self.forward(inputs, targets, training=True, dense_output=self.refeed_steps > 0)
            loss = self.penalised_loss(targets, outputs)
        gradients = tape.gradient(loss, self.trainable_variables)
        return loss, gradients, outputs

    def apply_gradients(self, gradients, fast):
        if fast and fast_path.is_plain_momentum(self.optimizer):
            fast_path.apply_fused_momentum(self.optimizer, gradients, self.trainable_variables)
        else:
            self.optimizer.apply(gradients, self.trainable_variables)

    def train_step(self, data):
        inputs, targets = data
        fast = isinstance(inputs, tf.SparseTensor)
        loss, gradients, outputs = self.loss_and_gradients(inputs, targets)
        self.apply_gradients(gradients, fast)
        self.track(loss, targets, outputs, inputs)
        # Dense re-feeding (paper, section 3.3): the dense output f(x) is a valid rating vector for the same user,
        # so it is fed back as input and target, and the network takes another step on it.
        for _ in range(self.refeed_steps):
            refed = tf.stop_gradient(outputs)
            _, gradients, outputs = self.loss_and_gradients(refed, refed)
            self.apply_gradients(gradients, fast)
        return self.logs()

    def test_step(self, data):
        inputs, targets = data
        outputs = self.forward(inputs, targets, training=False)
        self.track(self.penalised_loss(targets, outputs), targets, outputs, inputs)
        return self.logs()

    def track(self, loss, targets, outputs, inputs):
        """The epoch's loss and masked RMSE (means of the batch values weighted by the batch's rows) and its global
        RMSE (summed squared errors over summed ratings); predictions clipped to the rating scale for both RMSEs.
        Under tf.distribute the replicas' shares are summed into the global batch's values."""
        batch_rows = tf.cast(inputs.dense_shape[0] if isinstance(inputs, tf.SparseTensor) else tf.shape(inputs)[0],
                             tf.float32)
        squared_error, count = row_squared_errors(targets, outputs, clip=self.rating_scale)  # once, for both RMSEs
        self.loss_tracker.update_state(replica_sum(loss), sample_weight=replica_sum(batch_rows))
        self.rmse_tracker.update_state(replica_sum(mean_row_rmse(squared_error, count)),
                                       sample_weight=replica_sum(batch_rows))
        self.squared_error_tracker.update_state(replica_sum(tf.reduce_sum(squared_error)))
        self.ratings_tracker.update_state(replica_sum(tf.reduce_sum(count)))

    def logs(self):
        ratings = tf.maximum(self.ratings_tracker.result(), 1.0)
        logs = {"loss": self.loss_tracker.result(), "masked_rmse_clip": self.rmse_tracker.result(),
                "rmse_clip": tf.sqrt(self.squared_error_tracker.result() / ratings)}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces multi-worker logs along axis 0, which a scalar lacks (tensorflow/tensorflow#72388).
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    @property
    def metrics(self):
        return [self.loss_tracker, self.rmse_tracker, self.squared_error_tracker, self.ratings_tracker]

    def get_config(self):
        return {"n_inputs": self.n_inputs, "rating_scale": list(self.rating_scale), **self.hyperparameters,
                "name": self.name}
