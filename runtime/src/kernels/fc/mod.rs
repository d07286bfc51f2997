//! Fully-connected family: `y[m][n] = x[m][:] . w[n][:] + bias[n]`, weights `[n][k]`.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;
