//! Calibration: the float reference (tract, on the original model), activation statistics and
//! ranges, and the measurement of a compiled model against the reference (with the runtime).

pub mod eval;
pub mod reference;
pub mod stats;

pub use stats::{calibrate, CalibMethod, Calibration};
