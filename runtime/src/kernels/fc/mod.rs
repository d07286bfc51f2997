//! Fully-connected family: `y[m][n] = x[m][:] . w[n][:] + bias[n]`, weights `[n][k]`.

pub mod scalar;
