//! What calibration measures and the passes and lowering read: per-tensor ranges and per-channel
//! statistics, by tensor name.

use std::collections::HashMap;

/// Observed range of a tensor over the calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

/// Calibration statistics by tensor name.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ranges: HashMap<String, Range>,
    /// The smallest and largest value of each tensor over the calibration data, whatever
    /// `ranges` clips: int16 tensors (format 1.6) cover them, having the levels to spare.
    pub extremes: HashMap<String, Range>,
    /// Mean of each channel (axis 1) over the calibration data, for bias correction.
    pub channel_means: HashMap<String, Vec<f32>>,
    /// Root mean square of each channel, for activation-aware pruning.
    pub channel_rms: HashMap<String, Vec<f32>>,
}
