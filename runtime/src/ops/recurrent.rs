//! Recurrent family: ONNX LSTM and GRU (forward, reverse, bidirectional; default activations), f32.
//! Outputs: the hidden state of every step `y [T, D, B, H]`, the last hidden state `y_h [D, B, H]`
//! and, for the LSTM, the last cell state `y_c [D, B, H]`. The GRU uses `y_h` as its scratch for
//! `r * h` within a step; nothing else is needed beyond the outputs.

use super::{check_constant, invalid, Decoder, Exec};
use crate::error::RuntimeError;
use sparq_format::layout::op;
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

/// Where an f32 operand's data is: all that `Exec::data` and `Exec::out` read of its
/// descriptor. (A whole `TensorInfo` is about 120 bytes; with six of them the op would make every
/// op of a session's plan, an enum, twice as large.)
#[derive(Clone, Copy)]
pub struct Operand {
    storage: Storage,
    data_offset: usize,
    data_size: usize,
}

impl Operand {
    fn of(t: &TensorInfo<'_>) -> Operand {
        Operand { storage: t.storage, data_offset: t.data_offset, data_size: t.data_size }
    }
    /// A descriptor with this place, for `Exec` (shape and name are not read).
    fn info(self) -> TensorInfo<'static> {
        TensorInfo {
            index: 0,
            name: "",
            dtype: DType::F32,
            rank: 0,
            dims: [0; sparq_format::layout::MAX_RANK],
            layout: Layout::RowMajor,
            storage: self.storage,
            data_offset: self.data_offset,
            data_size: self.data_size,
            scale: 0.0,
            zero_point: 0,
            pack: None,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Recurrent<'a> {
    pub lstm: bool,
    pub x: Operand,
    /// The constants W, R and bias (resolved at decode).
    pub w: &'a [f32],
    pub r: &'a [f32],
    pub bias: &'a [f32],
    pub h0: Operand,
    pub c0: Option<Operand>,
    pub y: Operand,
    pub y_h: Operand,
    pub y_c: Option<Operand>,
    /// 0 forward, 1 reverse, 2 both.
    pub direction: i32,
    pub clip: f32,
    pub linear_before_reset: bool,
    pub steps: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl<'a> Recurrent<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let lstm = o.kind == op::LSTM;
        let gates = if lstm { 4 } else { 3 };
        let x = d.input(o, 0);
        let (w, r, bias, h0) = (d.input(o, 1), d.input(o, 2), d.input(o, 3), d.input(o, 4));
        let all_f32_row_major = (0..o.input_count)
            .map(|i| d.input(o, i))
            .chain((0..o.output_count).map(|i| d.view.tensor(o.output(i))))
            .all(|t| t.dtype == DType::F32 && t.layout == Layout::RowMajor);
        if !all_f32_row_major {
            return Err(bad("operands must be f32 row-major"));
        }
        if x.rank != 3 {
            return Err(bad("input must be [T, B, I]"));
        }
        let (steps, batch, input) = (x.dims[0], x.dims[1], x.dims[2]);
        let direction = o.params[op::RNN_DIRECTION];
        if !(0..=2).contains(&direction) {
            return Err(bad("direction must be 0, 1 or 2"));
        }
        let dirs = if direction == 2 { 2 } else { 1 };
        if w.rank != 3 || w.dims[0] != dirs || w.dims[2] != input || w.dims[1] % gates != 0 {
            return Err(bad("W must be [D, gates * H, I]"));
        }
        let hidden = w.dims[1] / gates;
        check_constant(o, &w, DType::F32, dirs * gates * hidden * input, "W must be an f32 constant")?;
        if r.shape() != [dirs, gates * hidden, hidden] {
            return Err(bad("R must be [D, gates * H, H]"));
        }
        check_constant(o, &r, DType::F32, dirs * gates * hidden * hidden, "R must be an f32 constant")?;
        if bias.shape() != [dirs, 2 * gates * hidden] {
            return Err(bad("bias must be [D, 2 gates H]"));
        }
        check_constant(o, &bias, DType::F32, dirs * 2 * gates * hidden, "bias must be an f32 constant [D, 2 gates H]")?;
        let state = [dirs, batch, hidden];
        if h0.shape() != state {
            return Err(bad("initial h must be [D, B, H]"));
        }
        let c0 = if lstm {
            let c0 = d.input(o, 5);
            if c0.shape() != state {
                return Err(bad("initial c must be [D, B, H]"));
            }
            Some(c0)
        } else {
            None
        };
        let y = d.view.tensor(o.output(0));
        let y_h = d.view.tensor(o.output(1));
        if y.shape() != [steps, dirs, batch, hidden] || y_h.shape() != state {
            return Err(bad("outputs must be y [T, D, B, H] and y_h [D, B, H]"));
        }
        let y_c = if lstm {
            let y_c = d.view.tensor(o.output(2));
            if y_c.shape() != state {
                return Err(bad("y_c must be [D, B, H]"));
            }
            Some(y_c)
        } else {
            None
        };
        let clip = o.param_f32(op::RNN_CLIP);
        if !(clip.is_finite() && clip >= 0.0) {
            return Err(bad("clip must be finite and non-negative (0: none)"));
        }
        let linear_before_reset = match (o.params[op::RNN_LINEAR_BEFORE_RESET], lstm) {
            (0, _) => false,
            (1, false) => true,
            _ => return Err(bad("linear_before_reset must be 0 (or 1 for GRU)")),
        };
        if input > super::MAX_REDUCTION || hidden > super::MAX_REDUCTION {
            return Err(bad("input or hidden size larger than 65536"));
        }
        Ok(Recurrent {
            lstm,
            x: Operand::of(&x),
            w: d.constant(&w),
            r: d.constant(&r),
            bias: d.constant(&bias),
            h0: Operand::of(&h0),
            c0: c0.as_ref().map(Operand::of),
            y: Operand::of(&y),
            y_h: Operand::of(&y_h),
            y_c: y_c.as_ref().map(Operand::of),
            direction,
            clip,
            linear_before_reset,
            steps,
            batch,
            input,
            hidden,
        })
    }

    pub fn kernel_name(&self) -> &'static str {
        if self.lstm {
            "f32_lstm_scalar"
        } else {
            "f32_gru_scalar"
        }
    }

    pub fn macs(&self) -> u64 {
        let gates = if self.lstm { 4 } else { 3 };
        let dirs = if self.direction == 2 { 2 } else { 1 };
        (dirs * self.steps * self.batch * gates * self.hidden * (self.input + self.hidden)) as u64
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, w, r, bias) = (e.data::<f32>(&self.x.info()), self.w, self.r, self.bias);
        let h0 = e.data::<f32>(&self.h0.info());
        let (y, y_h) = (e.out::<f32>(&self.y.info()), e.out::<f32>(&self.y_h.info()));
        let (t_n, b_n, i_n, h_n) = (self.steps, self.batch, self.input, self.hidden);
        let dirs = if self.direction == 2 { 2 } else { 1 };
        let gates = if self.lstm { 4 } else { 3 };
        let clip = |v: f32| if self.clip > 0.0 { v.clamp(-self.clip, self.clip) } else { v };
        let mut y_c = self.y_c.map(|t| e.out::<f32>(&t.info()));
        if let (Some(c), Some(c0)) = (y_c.as_deref_mut(), self.c0) {
            c.copy_from_slice(e.data::<f32>(&c0.info()));
        }
        for d in 0..dirs {
            let reverse = self.direction == 1 || d == 1;
            let wd = &w[d * gates * h_n * i_n..(d + 1) * gates * h_n * i_n];
            let rd = &r[d * gates * h_n * h_n..(d + 1) * gates * h_n * h_n];
            let bd = &bias[d * 2 * gates * h_n..(d + 1) * 2 * gates * h_n];
            let (wb, rb) = bd.split_at(gates * h_n);
            // Pre-activation of gate `g`, unit `j`, from input row `xr` and hidden row `hr`.
            let pre = |g: usize, j: usize, xr: &[f32], hr: &[f32]| {
                let row = g * h_n + j;
                wb[row] + rb[row] + dot(&wd[row * i_n..(row + 1) * i_n], xr) + dot(&rd[row * h_n..(row + 1) * h_n], hr)
            };
            for s in 0..t_n {
                let t = if reverse { t_n - 1 - s } else { s };
                let prev = if reverse { t + 1 } else { t.wrapping_sub(1) };
                for b in 0..b_n {
                    let xr = &x[(t * b_n + b) * i_n..][..i_n];
                    let state = (d * b_n + b) * h_n;
                    let out = ((t * dirs + d) * b_n + b) * h_n;
                    // The previous hidden state: h0, or the previous step's output row (never the
                    // row this step writes).
                    let hp = if s == 0 { state } else { ((prev * dirs + d) * b_n + b) * h_n };
                    if self.lstm {
                        let c = &mut y_c.as_deref_mut().expect("lstm has y_c")[state..state + h_n];
                        for j in 0..h_n {
                            let hprev = if s == 0 { &h0[hp..hp + h_n] } else { &y[hp..hp + h_n] };
                            let (gi, go) = (clip(pre(0, j, xr, hprev)), clip(pre(1, j, xr, hprev)));
                            let (gf, gc) = (clip(pre(2, j, xr, hprev)), clip(pre(3, j, xr, hprev)));
                            let cn = sigmoid(gf) * c[j] + sigmoid(gi) * libm::tanhf(gc);
                            c[j] = cn;
                            y[out + j] = sigmoid(go) * libm::tanhf(cn);
                        }
                    } else {
                        if !self.linear_before_reset {
                            // r * h_prev for every unit first (into y_h's row, as scratch).
                            for j in 0..h_n {
                                let hprev = if s == 0 { &h0[hp..hp + h_n] } else { &y[hp..hp + h_n] };
                                let rg = sigmoid(clip(pre(1, j, xr, hprev)));
                                y_h[state + j] = rg * hprev[j];
                            }
                        }
                        for j in 0..h_n {
                            let hprev = if s == 0 { &h0[hp..hp + h_n] } else { &y[hp..hp + h_n] };
                            let z = sigmoid(clip(pre(0, j, xr, hprev)));
                            let row = 2 * h_n + j;
                            let wx = wb[row] + dot(&wd[row * i_n..(row + 1) * i_n], xr);
                            let rrow = &rd[row * h_n..(row + 1) * h_n];
                            let cand = if self.linear_before_reset {
                                let rg = sigmoid(clip(pre(1, j, xr, hprev)));
                                wx + rg * (dot(rrow, hprev) + rb[row])
                            } else {
                                wx + dot(rrow, &y_h[state..state + h_n]) + rb[row]
                            };
                            let hn = libm::tanhf(clip(cand));
                            y[out + j] = (1.0 - z) * hn + z * hprev[j];
                        }
                    }
                }
            }
            // The last hidden state of this direction: the row of its last step.
            let last = if reverse { 0 } else { t_n - 1 };
            for b in 0..b_n {
                let src = ((last * dirs + d) * b_n + b) * h_n;
                let dst = (d * b_n + b) * h_n;
                y_h[dst..dst + h_n].copy_from_slice(&y[src..src + h_n]);
            }
        }
    }
}
