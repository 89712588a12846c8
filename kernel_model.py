"""Kernelised sparse layers (Sparse FC, Muller et al. 2018) and GLocal-K's global kernel (Han et al. 2021) in Keras 3.

A kernelised dense layer learns an embedding u_i for each input unit and v_j for each output unit; its effective
weight is W[i, j] * K[i, j] with the finite-support kernel K[i, j] = max(0, 1 - ||u_i - v_j||^2), so every pair of
units farther apart than 1 has a weight of exactly zero. Its penalty is lambda_2 on W and lambda_s on K (the papers'
TensorFlow l2_regularizer: lambda * sum(x^2) / 2).

The local autoencoder is item-based: a row is an item's ratings by every user.

    ratings row -> KernelDense(500, sigmoid) -> KernelDense(500, sigmoid) -> KernelDense(n_users, linear)

GLocal-K adds a global kernel: the mean of each item's reconstruction (the local autoencoder run over the whole
rating matrix) times a learned [n_items, size^2] matrix gives a size x size convolution kernel; the rating matrix,
convolved with it (ReLU), is what the local autoencoder then reads. The global kernel depends on the whole matrix,
so a trained model stores it (`global_kernel`) and `input_matrix` turns the train matrix into its input rows.
"""

import keras
import numpy as np
import tensorflow as tf


def local_kernel(u, v):
    """K[i, j] = max(0, 1 - ||u_i - v_j||^2) for embeddings u [n_in, d] and v [n_out, d]. The squared distance is
    expanded into norms and one matrix product, so no [n_in, n_out, d] tensor is ever built."""
    squared_distance = (tf.reduce_sum(tf.square(u), axis=1, keepdims=True) - 2.0 * tf.matmul(u, v, transpose_b=True)
                        + tf.reduce_sum(tf.square(v), axis=1)[tf.newaxis, :])
    return tf.nn.relu(1.0 - tf.maximum(squared_distance, 0.0))  # the max: rounding can make a distance negative


# The network's hyperparameters: the keys of a run's configuration that KernelAutoEncoder takes.
KERNEL_MODEL_KEYS = ["layers", "activation", "kernel_dim", "lambda_2", "lambda_s", "global_kernel_size", "dot_scale"]


@keras.saving.register_keras_serializable(package="deeprec")
class KernelDense(keras.layers.Layer):
    """A dense layer whose effective weight is W * K(u, v) (Sparse FC)."""

    def __init__(self, units, kernel_dim, activation, lambda_2, lambda_s, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kernel_dim = units, kernel_dim
        self.activation = keras.activations.get(activation)
        self.lambda_2, self.lambda_s = lambda_2, lambda_s

    def build(self, input_shape):
        n_in = input_shape[-1]
        # The papers' initialisation: Glorot-uniform W, zero bias, embeddings so close (std 0.001) that K starts at 1.
        embedding = keras.initializers.TruncatedNormal(stddev=1e-3)
        self.weight = self.add_weight(shape=(n_in, self.units), initializer="glorot_uniform", name="weight")
        self.u = self.add_weight(shape=(n_in, self.kernel_dim), initializer=embedding, name="u")
        self.v = self.add_weight(shape=(self.units, self.kernel_dim), initializer=embedding, name="v")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def kernel_values(self):
        return local_kernel(self.u, self.v)

    def effective_kernel(self):
        return self.weight * self.kernel_values()

    def call(self, inputs):
        kernel = self.effective_kernel()
        return self.activation(tf.matmul(tf.cast(inputs, kernel.dtype), kernel) + self.bias)

    def penalty(self):
        """lambda_2 * sum(W^2) / 2 + lambda_s * sum(K^2) / 2."""
        return self.lambda_2 * tf.nn.l2_loss(self.weight) + self.lambda_s * tf.nn.l2_loss(self.kernel_values())

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kernel_dim": self.kernel_dim,
                "activation": keras.activations.serialize(self.activation), "lambda_2": self.lambda_2,
                "lambda_s": self.lambda_s}


def global_convolution(matrix, kernel):
    """ReLU of the rating matrix [rows, cols] convolved with a [size, size] kernel ('same' zero padding, as
    tf.nn.conv2d): the sum of size^2 shifted copies of the matrix, each times one kernel value. On CPU this is
    several times faster than conv2d with its single channel, forward and backward."""
    size = kernel.shape[0]
    matrix = tf.cast(matrix, kernel.dtype)
    rows, cols = matrix.shape
    padded = tf.pad(matrix, [[(size - 1) // 2, size // 2], [(size - 1) // 2, size // 2]])
    convolved = tf.add_n([kernel[a, b] * padded[a:a + rows, b:b + cols] for a in range(size) for b in range(size)])
    return tf.nn.relu(convolved)


class KnownRatings:
    """The known ratings of a sparse matrix, kept as TensorFlow CSR matrices (itself and its transpose) for products
    with dense matrices. On CPU these take under half the time of the dense product that multiplies every zero, and
    a tenth of tf.sparse's, so the training objective's largest products go through them (benchmark.py --lbfgs
    times the whole objective both ways)."""

    def __init__(self, matrix):
        coo = matrix.tocoo()
        order = np.lexsort((coo.col, coo.row))  # CSR wants row-major order
        rows, cols = coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)
        self.positions = tf.constant(np.stack([rows, cols], axis=1))
        self.values = tf.constant(coo.data[order], tf.float32)
        self.shape = tf.constant(matrix.shape, tf.int64)
        transposed = np.lexsort((rows, cols))
        self.transposed_order = tf.constant(transposed)
        self.transposed_positions = tf.constant(np.stack([cols[transposed], rows[transposed]], axis=1))
        self.transposed_shape = tf.constant(matrix.shape[::-1], tf.int64)

    def times(self, dense, values):
        """M @ dense, where M has this matrix's known positions and the given values (one per position)."""
        matrix = tf.raw_ops.SparseTensorToCSRSparseMatrix(indices=self.positions, values=values,
                                                          dense_shape=self.shape)
        return tf.raw_ops.SparseMatrixMatMul(a=matrix, b=dense)

    def transposed_times(self, dense, values):
        """M^T @ dense, for M as in times."""
        matrix = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=self.transposed_positions, values=tf.gather(values, self.transposed_order),
            dense_shape=self.transposed_shape)
        return tf.raw_ops.SparseMatrixMatMul(a=matrix, b=dense)


def sparse_product(ratings, kernel):
    """ratings @ kernel for a KnownRatings matrix; kernel's gradient is the sparse product ratings^T @ upstream."""

    @tf.custom_gradient
    def product(kernel):
        def gradient(upstream):
            return ratings.transposed_times(upstream, ratings.values)
        return ratings.times(kernel, ratings.values), gradient

    return product(kernel)


def sampled_product(codes, kernel, ratings):
    """(codes @ kernel) at the known positions of ratings. The loss reads only these entries, so the upstream
    gradient is sparse and both gradients are sparse products instead of dense ones."""

    @tf.custom_gradient
    def product(codes, kernel):
        def gradient(upstream):
            return (ratings.times(tf.transpose(kernel), upstream),
                    tf.transpose(ratings.transposed_times(codes, upstream)))
        return tf.gather_nd(tf.matmul(codes, kernel), ratings.positions), gradient

    return product(codes, kernel)


@keras.saving.register_keras_serializable(package="deeprec")
class KernelAutoEncoder(keras.Model):
    """The local kernel autoencoder (Sparse FC) and, with global_kernel_size > 0, GLocal-K. `n_inputs` is the row
    length (users: rows are items), `n_rows` the number of rows (GLocal-K's pooling reads one mean per row),
    `rating_scale` the (lowest, highest) rating. Trained full-batch by lbfgs.py, not by fit."""

    def __init__(self, n_inputs, n_rows, rating_scale, layers, activation, kernel_dim, lambda_2, lambda_s,
                 global_kernel_size, dot_scale, **kwargs):
        super().__init__(**kwargs)
        self.n_inputs, self.n_rows, self.rating_scale = n_inputs, n_rows, tuple(rating_scale)
        self.hyperparameters = dict(layers=list(layers), activation=activation, kernel_dim=kernel_dim,
                                    lambda_2=lambda_2, lambda_s=lambda_s, global_kernel_size=global_kernel_size,
                                    dot_scale=dot_scale)
        self.global_kernel_size, self.dot_scale = global_kernel_size, dot_scale
        self.hidden = [KernelDense(units, kernel_dim, activation, lambda_2, lambda_s, name=f"hidden_{index}")
                       for index, units in enumerate(layers)]
        self.output_layer = KernelDense(n_inputs, kernel_dim, "linear", lambda_2, lambda_s, name="output")

    def build(self, input_shape=None):
        """Every weight up front, so that saved weights load before any training."""
        size = self.n_inputs
        for layer in self.hidden + [self.output_layer]:
            layer.build((None, size))
            size = layer.units
        if self.global_kernel_size:
            squares = self.global_kernel_size ** 2
            self.pooling_weights = self.add_weight(
                shape=(self.n_rows, squares), initializer=keras.initializers.TruncatedNormal(stddev=0.1),
                name="pooling_weights")
            # The global kernel of the trained model, fixed after training: what input_matrix convolves with.
            self.global_kernel = self.add_weight(shape=(self.global_kernel_size, self.global_kernel_size),
                                                 initializer="zeros", trainable=False, name="global_kernel")

    # ------------------------------------------------------------------------------------------------------------
    # The network, as the papers write it: the local kernel autoencoder, the global kernel, the convolution.

    def encode(self, rows):
        hidden = rows
        for layer in self.hidden:
            hidden = layer(hidden)
        return hidden

    def call(self, rows, training=False):
        """The local autoencoder's reconstruction of the given input rows (for GLocal-K: rows of input_matrix)."""
        return self.output_layer(self.encode(rows))

    def global_kernel_of(self, codes):
        """GLocal-K's global kernel from the local autoencoder's reconstruction of the whole matrix, given its hidden
        codes: each row's mean reconstruction (item-based average pooling), times pooling_weights, scaled. The
        output layer is linear, so a row's mean output is its code times the mean column of the output kernel plus
        the mean bias: the [rows, n_inputs] reconstruction is never built."""
        layer = self.output_layer
        mean_column = tf.reduce_mean(layer.effective_kernel(), axis=1, keepdims=True)
        row_means = tf.matmul(codes, mean_column)[:, 0] + tf.reduce_mean(layer.bias)
        kernel = tf.linalg.matvec(self.pooling_weights, row_means, transpose_a=True) * self.dot_scale
        return tf.reshape(kernel, [self.global_kernel_size, self.global_kernel_size])

    # ------------------------------------------------------------------------------------------------------------
    # The same network for training on the whole known-rating matrix, reading and scoring only its known ratings.

    def encode_known(self, ratings):
        """encode of the whole rating matrix (a KnownRatings), its first product over the known ratings only."""
        first = self.hidden[0]
        hidden = first.activation(sparse_product(ratings, first.effective_kernel()) + first.bias)
        for layer in self.hidden[1:]:
            hidden = layer(hidden)
        return hidden

    def reconstruct_at(self, codes, ratings):
        """The reconstruction from the codes of all rows at the positions of the known ratings (linear output)."""
        layer = self.output_layer
        return (sampled_product(codes, layer.effective_kernel(), ratings)
                + tf.gather(layer.bias, ratings.positions[:, 1]))

    def input_matrix(self, train_matrix):
        """What the network reads: the train matrix itself (Sparse FC), or its convolution with the stored global
        kernel (GLocal-K) as a dense NumPy array."""
        if not self.global_kernel_size:
            return train_matrix
        dense = train_matrix.toarray() if hasattr(train_matrix, "toarray") else np.asarray(train_matrix)
        return global_convolution(dense, self.global_kernel).numpy()

    def penalty(self):
        return tf.add_n([layer.penalty() for layer in self.hidden + [self.output_layer]])

    def get_config(self):
        return {"n_inputs": self.n_inputs, "n_rows": self.n_rows, "rating_scale": list(self.rating_scale),
                **self.hyperparameters, "name": self.name}
